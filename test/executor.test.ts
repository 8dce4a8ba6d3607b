/** The executor: commands run under a supervisor that takes their whole process group down with the worker. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProcess } from '../executors/nodes/io/process-group.ts';
import { ROOT, tempDir } from '../testkit/specs.ts';
import { spawnGroup } from '../testkit/processes.ts';
import { processesMentioning, until } from '../testkit/wait.ts';

describe('local executor', () => {
  it('reports exit codes and signals of the command itself', async () => {
    const log = path.join(tempDir('exec'), 'log');
    expect(await startProcess({ argv: ['bash', '-c', 'exit 3'], cwd: '/tmp', env: process.env, logFile: log }).exited).toEqual({ exitCode: 3, signal: null });
    expect(await startProcess({ argv: ['bash', '-c', 'kill -9 $$'], cwd: '/tmp', env: process.env, logFile: log }).exited).toEqual({
      exitCode: null,
      signal: 'SIGKILL',
    });
  });

  it('a worker killed with SIGKILL takes the command and everything it started with it, even what ignores SIGTERM', async () => {
    const marker = `linkflow-test-${process.pid}-${Date.now()}`;
    // The launcher leaves a child behind that ignores SIGTERM, as a stuck rank might.
    // (The names are split in the script text so that only the running processes carry them whole.)
    const script = `(trap "" TERM; exec -a "${marker}-st""uck" sleep 300) & exec -a "${marker}-ma""in" sleep 300`;
    const worker = spawnGroup(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'test', 'fixtures', 'start-and-wait.ts'), path.join(tempDir('exec'), 'log'), 'bash', '-c', script],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await until('the command to start', async () => processesMentioning(`${marker}-stuck`).length > 0 && processesMentioning(`${marker}-main`).length > 0);
    worker.kill('SIGKILL');
    // The supervisor outlives the worker only for the grace period (1.5 s here), then SIGKILLs the group.
    await until('the group to be gone', async () => processesMentioning(`${marker}-stuck`).length + processesMentioning(`${marker}-main`).length === 0, {
      timeoutMs: 10_000,
    });
  });
});
