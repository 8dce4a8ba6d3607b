/**
 * Reading TensorBoard event files far enough to rewind them: TFRecord framing (uint64 length, masked
 * CRC of it, the bytes, masked CRC of them; tensorflow/core/lib/io/record_writer.cc) around Event
 * protobufs (tensorflow event.proto: step = 2, summary = 5 holding Summary.Value { tag = 1 }). Pure:
 * the caller reads and writes the files.
 *
 * Why rewind at all: Megatron's writer (torch's SummaryWriter) starts a new file at every start, and a
 * resumed trainer logs the iterations after its checkpoint again. TensorBoard drops such orphaned steps
 * only on a SessionLog START event (event_accumulator.py _CheckForRestartAndMaybePurge, for files of
 * "brain.Event:2"), which torch never writes and which, purging every tag above one step, would wipe
 * the "… vs samples" series (their steps are sample counts). So the curves show every recomputed step twice.
 */

export interface EventRecord {
  /** Byte range of the whole record (framing included) in its file. */
  start: number;
  end: number;
  step: number;
  tags: string[];
}

/** The complete records of a file, in order; a record torn by a crash ends the list. */
export function eventRecords(buf: Uint8Array): EventRecord[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: EventRecord[] = [];
  let at = 0;
  while (at + 12 <= buf.length) {
    const length = Number(view.getBigUint64(at, true));
    const end = at + 12 + length + 4;
    if (end > buf.length) break;
    out.push({ start: at, end, ...parseEvent(buf.subarray(at + 12, at + 12 + length)) });
    at = end;
  }
  return out;
}

/** Scalars against samples ("lm loss vs samples") count samples, not iterations. */
export function isIterationTag(tag: string): boolean {
  return !tag.endsWith(' vs samples');
}

/**
 * Where a file written by a trainer stops being valid for a resume from `iteration`: the first record
 * logged for a later iteration. Megatron writes an iteration's scalars together (training_log), so
 * everything from there on, "vs samples" series included, belongs to iterations the resume redoes.
 */
export function rewindOffset(records: EventRecord[], iteration: number): number | undefined {
  const first = records.find((r) => r.tags.some(isIterationTag) && r.step > iteration);
  return first?.start;
}

function parseEvent(bytes: Uint8Array): { step: number; tags: string[] } {
  let step = 0;
  const tags: string[] = [];
  for (const field of fields(bytes)) {
    if (field.number === 2 && typeof field.value === 'bigint') step = Number(BigInt.asIntN(64, field.value));
    if (field.number === 5 && field.value instanceof Uint8Array)
      for (const value of fields(field.value))
        if (value.number === 1 && value.value instanceof Uint8Array)
          for (const f of fields(value.value)) if (f.number === 1 && f.value instanceof Uint8Array) tags.push(new TextDecoder().decode(f.value));
  }
  return { step, tags };
}

/** Protobuf fields of a message: varints as bigint, length-delimited as bytes, fixed ones skipped. */
function* fields(bytes: Uint8Array): Generator<{ number: number; value: bigint | Uint8Array | undefined }> {
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[at++];
      if (b === undefined) throw new Error('truncated varint');
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (at < bytes.length) {
    const key = Number(varint());
    const number = key >> 3;
    switch (key & 7) {
      case 0:
        yield { number, value: varint() };
        break;
      case 1:
        at += 8;
        yield { number, value: undefined };
        break;
      case 2: {
        const length = Number(varint());
        yield { number, value: bytes.subarray(at, at + length) };
        at += length;
        break;
      }
      case 5:
        at += 4;
        yield { number, value: undefined };
        break;
      default:
        return;
    }
  }
}
