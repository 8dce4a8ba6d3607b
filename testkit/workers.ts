/** `linkflow worker` processes for tests that kill or drain a worker, or need several nodes. */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './specs.ts';
import { signalGroup, spawnGroup } from './processes.ts';

/** Starts `linkflow worker <args>` against a server; resolves once it polls. Kill them all with `stopWorkers`. */
export function startWorkerProcess(serverAddress: string, args: string[], started: ChildProcess[], env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawnGroup(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), 'worker', ...args], {
    cwd: ROOT,
    env: { ...process.env, TEMPORAL_ADDRESS: serverAddress, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('worker polling')) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`worker exited (${code}):\n${out}`)));
  });
}

/** SIGKILLs each worker's process group (a worker's trainers are in their supervisors' own groups, which stop them when the worker dies). */
export function stopWorkers(started: ChildProcess[]): void {
  for (const w of started) signalGroup(w, 'SIGKILL');
}
