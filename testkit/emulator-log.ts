/** Reading the emulator's Megatron-style training log in tests. */

/** "iteration       30/      30 |": the iteration and the total. */
export const ITERATION_RE = /iteration\s+(\d+)\/\s*(\d+) \|/;

/** The iterations a training log printed, in order. */
export function iterations(stdout: string): number[] {
  return stdout
    .split('\n')
    .map((line) => ITERATION_RE.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
}
