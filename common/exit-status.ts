/** How a process ended: its exit code, or the signal that ended it (node/ observes it, failures/failures.ts classifies it). */
export interface ExitStatus {
  exitCode: number | null;
  signal: string | null;
}
