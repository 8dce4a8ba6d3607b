/**
 * One line of a failure's cause for a retry line (`run --wait`, `status`): a CANN message runs to
 * hundreds of characters of timestamps, PIDs, hex dumps and `[FUNC:…][FILE:…][LINE:…]` tags; the
 * line keeps the error code or type and the first sentence of what it says.
 */
import type { FailureClass } from './classes.ts';

export const CAUSE_LINE_MAX = 140;

const NOISE: readonly RegExp[] = [
  /\[FUNC:[^\]]*\]|\[FILE:[^\]]*\]|\[LINE:[^\]]*\]/g,
  // CANN's stamps: `[PID: 2969] 2025-10-11-15:09:34.713.335`, `2024-09-29-10:12:01.123.456`, `(PID:123, Device:0, RankID:1)`.
  /\[PID: ?\d+\]/g,
  /\b\d{4}-\d{2}-\d{2}[-T ]\d{2}:\d{2}:\d{2}(?:[.,:]\d+)*\b/g,
  /\(PID:\d+, Device:-?\d+, RankID:-?\d+\)/g,
  // A Python module path before the error type: `torch.distributed.DistBackendError` → `DistBackendError`.
  /^(?:[a-z_][\w]*\.)+(?=[A-Z]\w*(?:Error|Exception)\b)/,
];

/** The cause in one short line: `EI0002: The wait execution of the Notify register times out.` */
export function causeInOneLine(reason: string, max = CAUSE_LINE_MAX): string {
  let line = reason.split('\n').find((l) => l.trim() !== '') ?? reason;
  for (const noise of NOISE) line = line.replace(noise, ' ');
  line = line
    .replace(/\s+/g, ' ')
    .replace(/\s+([:,.)])/g, '$1')
    .trim();
  // The first sentence, when the rest is detail (Reason:, Possible Cause:, base information…).
  const sentence = /^(.{20,}?[.!?])(?:\s|$)/.exec(line);
  if (sentence && sentence[1].length < line.length && sentence[1].length >= Math.min(40, line.length)) line = sentence[1];
  return line.length <= max ? line : `${line.slice(0, max - 1).trimEnd()}…`;
}

/** `hang: EI0002: The wait execution of the Notify register times out.` */
export function retryCause(cls: FailureClass | undefined, reason: string | undefined): string {
  return `${cls ?? 'unknown'}${reason ? `: ${causeInOneLine(reason)}` : ''}`;
}
