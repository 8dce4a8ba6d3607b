/**
 * Processes a test (or a perf script) starts, each in its own process group, so that stopping one
 * stops everything it started (a torchrun's ranks, a worker's children): a process killed alone
 * leaves its children to init, where they run on after the suite (issue 20: a hung emulator rank
 * still running 50 minutes later).
 *
 * In vitest, testkit/vitest-setup.ts stops what a test started when the test ends (passed, failed
 * or timed out) and what a file's hooks started when the file ends; if the process itself goes
 * first, an exit hook takes the groups with it. What escapes all of these, the suite's teardown
 * finds (testkit/leftovers.ts). No vitest import here: perf/ and scripts/ use it too.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams, type SpawnOptions, type SpawnOptionsWithoutStdio } from 'node:child_process';

type Scope = 'test' | 'file';
const live = new Map<ChildProcess, Scope>();
let scope: Scope = 'file';
let hooksInstalled = false;

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** Signals the whole group of a process `spawnGroup` started; false if the group is gone (leader and every member exited). */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals | 0): boolean {
  if (child.pid === undefined) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** `spawn` in a new process group (detached), registered to be stopped with its group. */
export function spawnGroup(command: string, args: string[], options?: SpawnOptionsWithoutStdio): ChildProcessWithoutNullStreams;
export function spawnGroup(command: string, args: string[], options: SpawnOptions): ChildProcess;
export function spawnGroup(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  live.set(child, scope);
  installHooks();
  return child;
}

/** SIGTERM to the group, then SIGKILL to whatever of it remains after `graceMs`: a worker gets to stop what it started. */
export async function stopGroup(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (signalGroup(child, 0)) {
    if (running(child) && graceMs > 0) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      signalGroup(child, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    // The leader may be gone and a member not (a rank that ignores SIGTERM).
    signalGroup(child, 'SIGKILL');
  }
  live.delete(child);
}

/** From now until `endTest`, started groups belong to the running test (testkit/vitest-setup.ts's beforeEach). */
export function beginTest(): void {
  scope = 'test';
}

/** Stops the groups started since `beginTest`. */
export async function endTest(graceMs?: number): Promise<void> {
  scope = 'file';
  await Promise.all([...live].filter(([, s]) => s === 'test').map(([child]) => stopGroup(child, graceMs)));
}

/** Stops every group started and not stopped yet. */
export async function stopAllGroups(graceMs?: number): Promise<void> {
  await Promise.all([...live.keys()].map((child) => stopGroup(child, graceMs)));
}

function killAll(): void {
  for (const child of live.keys()) signalGroup(child, 'SIGKILL');
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // No time to be gentle when this process goes: the groups go with it. A group does not get the
  // terminal's Ctrl-C, so a signal that ends this process ends them too.
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      killAll();
      // Then as if we had never listened: the signal again, to the other listeners or, if none, the default (exit).
      // (A listener that waits for being the only one, as devserver/dev-server.ts's does, acts on the second.)
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}
