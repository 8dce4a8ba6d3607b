/**
 * Secret values masked out of text: a process's output on its way into a log file, the lines a
 * watcher keeps, any message built from them. Output is masked line by line, so a value split
 * across two reads of the pipe is still found.
 */
import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';

export const MASK = '***';
/** Shorter values would mask ordinary text (digits of an iteration line); they are not treated as secrets. */
export const MIN_MASKED_LENGTH = 4;
/** A line longer than this is written in parts; the part held back is as long as the longest secret. */
const MAX_PENDING = 64 * 1024;

export class Masker {
  private readonly values: string[];

  constructor(secrets: string[]) {
    // A multi-line value (a key file) is also masked line by line: output may print one line of it.
    const parts = secrets.flatMap((s) => [s, ...s.split(/\r?\n/).map((l) => l.trim())]);
    // Longest first, so a value containing another is masked whole.
    this.values = [...new Set(parts.filter((p) => p.length >= MIN_MASKED_LENGTH))].sort((a, b) => b.length - a.length);
  }

  get active(): boolean {
    return this.values.length > 0;
  }

  get longest(): number {
    return this.values[0]?.length ?? 0;
  }

  mask(text: string): string {
    let out = text;
    for (const v of this.values) out = out.split(v).join(MASK);
    return out;
  }

  /** A stream that passes bytes through with every secret masked, holding back only an unfinished line. */
  stream(): Transform {
    const decoder = new StringDecoder('utf8');
    let pending = '';
    const stream: Transform = new Transform({
      transform: (chunk: Buffer, _encoding, done: TransformCallback) => {
        pending += decoder.write(chunk);
        let cut = pending.lastIndexOf('\n') + 1;
        // A very long unfinished line: write all but a tail that could hold the start of a secret.
        if (cut === 0 && pending.length > MAX_PENDING) cut = pending.length - this.longest;
        if (cut > 0) stream.push(this.mask(pending.slice(0, cut)));
        pending = pending.slice(cut);
        done();
      },
      flush: (done: TransformCallback) => {
        pending += decoder.end();
        if (pending.length > 0) stream.push(this.mask(pending));
        done();
      },
    });
    return stream;
  }
}
