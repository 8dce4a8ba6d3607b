/** Durations as linkflow's files and environment write them, and their length in milliseconds. */
import { z } from 'zod';

/** "90s", "10m", "2h", "1d" or a number of seconds. */
export const durationSchema = z.union([
  z.number().positive('expected a positive number of seconds'),
  z.string().regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'expected a duration such as "90s", "10m" or "2h"'),
]);
export type Duration = z.infer<typeof durationSchema>;

export function durationToMs(d: Duration): number {
  if (typeof d === 'number') return d * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw new Error(`invalid duration ${d}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
