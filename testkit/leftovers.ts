/**
 * The suite leaves nothing running: testkit/global-setup.ts marks this run with LINKFLOW_TEST_RUN=<id>
 * in the environment every test process, and everything they start, inherits. At the end, a process
 * still carrying the mark (or below one that does: a container or `env -i` clears its environment) was
 * left behind: it is killed and the run fails, naming it.
 */
import { commandLine, descendantsAndSelf, isZombie, parentOf, pids, processesWithEnv } from './proc.ts';

export const RUN_ENV = 'LINKFLOW_TEST_RUN';

export interface Leftover {
  pid: number;
  parent: number | undefined;
  command: string;
}

export interface FindOptions {
  /** Never leftovers: the vitest process itself and its pool's workers (they close after the teardown). */
  exclude?: number[];
}

/** Live processes of run `runId` (see above), parents before children. */
export function findLeftovers(runId: string, options: FindOptions = {}): Leftover[] {
  const exclude = new Set(options.exclude ?? []);
  const marked = processesWithEnv(`${RUN_ENV}=${runId}`).filter((pid) => !exclude.has(pid));
  return descendantsAndSelf(marked)
    .filter((pid) => !exclude.has(pid) && !isZombie(pid))
    .map((pid) => ({ pid, parent: parentOf(pid), command: commandLine(pid) }))
    .filter((p) => p.parent !== undefined); // gone while we looked
}

/** The vitest process and its direct children (pool workers, the transformer's service): they carry the mark and are not left over. */
export function vitestProcesses(self = process.pid): number[] {
  return [self, ...pids().filter((pid) => parentOf(pid) === self)];
}

export function describeLeftovers(found: Leftover[]): string {
  return [
    `${found.length} process${found.length === 1 ? '' : 'es'} started by the tests ${found.length === 1 ? 'was' : 'were'} still running at the end (killed now):`,
    ...found.map((p) => `  pid ${p.pid} (parent ${p.parent}): ${p.command}`),
    'Start processes with testkit/processes.ts (spawnGroup) and stop them by process group (README, Development).',
  ].join('\n');
}

/**
 * Waits up to `graceMs` for the run's processes to go (a supervisor outlives its worker for its grace
 * period), then SIGKILLs the rest; returns what it had to kill.
 */
export async function reapLeftovers(runId: string, options: FindOptions & { graceMs?: number } = {}): Promise<Leftover[]> {
  const deadline = Date.now() + (options.graceMs ?? 10_000);
  let found = findLeftovers(runId, options);
  while (found.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    found = findLeftovers(runId, options);
  }
  // Stopped ones (SIGSTOP, a frozen Slurm node) die of SIGKILL too.
  for (const p of found) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  return found;
}
