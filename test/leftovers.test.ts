/**
 * Nothing left behind (issue 20): a test's processes are stopped with their process group, and the
 * suite's teardown finds, kills and fails on any process of the run still running at its end.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeLeftovers, findLeftovers, reapLeftovers, RUN_ENV, vitestProcesses } from '../testkit/leftovers.ts';
import { spawnGroup, stopGroup } from '../testkit/processes.ts';
import { isZombie, processesWithEnv, readProc } from '../testkit/proc.ts';
import { ROOT } from '../testkit/specs.ts';
import { until } from '../testkit/wait.ts';
import { leaveDetachedGrandchild } from './fixtures/leftover/grandchild.ts';

const alive = (pid: number) => readProc(pid, 'stat') !== undefined && !isZombie(pid);

/** A run of its own, so that what these tests leave on purpose is not the suite's run. */
function otherRun(): { id: string; env: NodeJS.ProcessEnv; name: string } {
  const id = randomUUID();
  return { id, env: { ...process.env, [RUN_ENV]: id }, name: `linkflow-leftover-${id.slice(0, 8)}` };
}

describe('the leftover check', () => {
  it('finds a detached grandchild whose parent exited, names it with its pid and command line, and kills it', async () => {
    const run = otherRun();
    const pid = leaveDetachedGrandchild(run.name, run.env);
    try {
      const found = findLeftovers(run.id);
      expect(found.map((p) => p.pid)).toEqual([pid]);
      expect(found[0].command).toBe(`${run.name} 300`);
      expect(describeLeftovers(found)).toContain(`pid ${pid} (parent ${found[0].parent}): ${run.name} 300`);
      // Another run's check does not see it.
      expect(findLeftovers(randomUUID())).toEqual([]);
      expect((await reapLeftovers(run.id, { graceMs: 0 })).map((p) => p.pid)).toEqual([pid]);
      await until('the leftover to be killed', async () => !alive(pid), { timeoutMs: 5_000 });
      expect(findLeftovers(run.id)).toEqual([]);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('finds a process that cleared its environment below one that carries the mark', async () => {
    const run = otherRun();
    // bash keeps the mark; `env -i` starts its child with an empty environment, as a container runtime does.
    const shell = spawnGroup('bash', ['-c', 'env -i sleep 300 & wait'], { env: run.env, stdio: 'ignore' });
    try {
      await until('the unmarked child', async () => findLeftovers(run.id).length === 2, { timeoutMs: 5_000 });
      const found = findLeftovers(run.id);
      expect(found[0].pid).toBe(shell.pid);
      const unmarked = found.find((p) => p.parent === shell.pid)!;
      expect(unmarked.command).toBe('sleep 300');
      expect(readProc(unmarked.pid, 'environ')).toBe('');
      expect(processesWithEnv(`${RUN_ENV}=${run.id}`)).toEqual([shell.pid]);
    } finally {
      await stopGroup(shell, 1_000);
    }
    await until('the run to be clean', async () => findLeftovers(run.id).length === 0, { timeoutMs: 5_000 });
  });

  it('leaves out the vitest process and its pool workers, which carry the mark but close after the check', () => {
    const run = otherRun();
    const child = spawnGroup('sleep', ['300'], { env: run.env, stdio: 'ignore' });
    expect(findLeftovers(run.id, { exclude: [child.pid!] })).toEqual([]);
    expect(vitestProcesses(process.pid)).toContain(child.pid);
    expect(vitestProcesses(process.pid)[0]).toBe(process.pid);
  });

  it('fails a vitest run whose test leaves a process behind, listing it, and kills it', () => {
    const name = `linkflow-leftover-${randomUUID().slice(0, 8)}`;
    const r = spawnSync(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/fixtures/leftover/vitest.config.ts'],
      {
        cwd: ROOT,
        env: { ...process.env, LEFTOVER_NAME: name, LINKFLOW_TEST_LEFTOVER_GRACE_MS: '500' },
        encoding: 'utf8',
        timeout: 170_000,
      },
    );
    const out = r.stdout + r.stderr;
    // The fixture's test passed; the run failed on what it left.
    expect(out).toMatch(/1 passed/);
    expect(r.status, out).toBe(1);
    const listed = new RegExp(`pid (\\d+) \\(parent \\d+\\): ${name} 300`).exec(out);
    expect(listed, out).not.toBeNull();
    expect(out).toContain('still running at the end (killed now)');
    expect(alive(Number(listed![1]))).toBe(false);
  });
});

describe('a process group started by a test', () => {
  it('is stopped whole: a child that ignores SIGTERM is killed after the grace, not left to init', async () => {
    const run = otherRun();
    const child = spawnGroup('bash', ['-c', `(trap "" TERM; exec -a "$1" sleep 300) & wait`, 'group-test', `${run.name}-stuck`], {
      env: run.env,
      stdio: 'ignore',
    });
    await until('the stuck child', async () => findLeftovers(run.id).some((p) => p.command.startsWith(`${run.name}-stuck`)), { timeoutMs: 5_000 });
    await stopGroup(child, 500);
    await until('the group to be gone', async () => findLeftovers(run.id).length === 0, { timeoutMs: 5_000 });
  });
});

describe('when testkit/vitest-setup.ts stops a group', () => {
  let fromHook: number;
  let fromTest: number;
  beforeAll(() => {
    fromHook = spawnGroup('sleep', ['300'], { stdio: 'ignore' }).pid!;
  });

  it('a test starts one', () => {
    fromTest = spawnGroup('sleep', ['300'], { stdio: 'ignore' }).pid!;
    expect(alive(fromTest)).toBe(true);
  });

  it('it was stopped when that test ended; the one started by the beforeAll runs until the file ends', () => {
    expect(alive(fromTest)).toBe(false);
    expect(alive(fromHook)).toBe(true);
  });
});
