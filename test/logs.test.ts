/**
 * `linkflow logs`: a finished stage's log is the file, byte for byte; -f follows the running attempt and
 * goes on into the next attempt after a crash; a log on a node is read through that node's worker, in
 * chunks. On a real dev server with the emulator.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fiveStageSpec, ROOT, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { runCli } from '../testkit/cli.ts';
import { until } from '../testkit/wait.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { planFile } from '../testkit/temporal.ts';
import { spawnGroup } from '../testkit/processes.ts';
import { createLinkflowWorker } from '../worker/worker.ts';
import { readLogChunk } from '../activities/log-chunk.ts';
import { readLogChunkWorkflowType } from '../contracts/workflows.ts';
import { logTarget } from '../client/log-target.ts';
import type { PipelineState, StageState } from '../contracts/run-state.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
}, 120_000);
afterAll(async () => {
  await t?.stop();
}, 120_000);

function pretrainSpec(name: string, opts: { trainIters: number; env: Record<string, string> }): RawSpec {
  const dir = tempDir(name);
  const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: opts.trainIters, saveInterval: 10, pretrainEnv: opts.env });
  spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
  return spec;
}

const specFile = (spec: RawSpec) => writeSpec(path.dirname(spec.workspace as string), spec);
const cliEnv = () => ({ TEMPORAL_ADDRESS: t.config.address, LINKFLOW_TASK_QUEUE: t.config.taskQueue });

describe('linkflow logs', () => {
  it("prints a finished stage's log exactly as the file, for any attempt", async () => {
    const { state, handle } = await runSpec(t, specFile(pretrainSpec('logs-done', { trainIters: 30, env: { MLEMU_FAULTS: 'crash@15' } })));
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    const latest = await runCli(['logs', handle.workflowId, '--stage', 'pretrain'], cliEnv());
    expect(latest.code, latest.stderr).toBe(0);
    expect(latest.stdout).toBe(fs.readFileSync(pretrain.attempts[1].logFile!, 'utf8'));
    const first = await runCli(['logs', handle.workflowId, '--stage', 'pretrain', '--attempt', '1'], cliEnv());
    expect(first.stdout).toBe(fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8'));
    expect(first.stdout).toMatch(/Traceback/);
    // Without --stage: the last stage that ran.
    expect((await runCli(['logs', handle.workflowId], cliEnv())).stdout).toBe(latest.stdout);
    const missing = await runCli(['logs', handle.workflowId, '--stage', 'pretrain', '--attempt', '3'], cliEnv());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/stage pretrain has no attempt 3 \(it made 2\)/);
    const unknown = await runCli(['logs', handle.workflowId, '--stage', 'nope'], cliEnv());
    expect(unknown.stderr).toMatch(/no stage "nope" \(stages: data, weights, pretrain\)/);
    // Every worker is a node (this one is named after its host): the same log through its worker.
    const viaNode = await runCli(['logs', handle.workflowId, '--stage', 'pretrain', '--via-node'], cliEnv());
    expect(viaNode.code, viaNode.stderr).toBe(0);
    expect(viaNode.stdout).toBe(latest.stdout);
  }, 240_000);

  it('-f follows the running attempt, then the next attempt after a crash, and ends with the stage', async () => {
    const plan = planFile(specFile(pretrainSpec('logs-follow', { trainIters: 80, env: { MLEMU_FAULTS: 'crash@60', MLEMU_ITER_TIME_MS: '100' } })));
    const handle = await startPipeline(t.client, t.config, plan);
    await until(
      'pretrain attempt 1 logging iterations',
      async () => {
        const live = (await snapshot(handle)).live;
        return live?.stage === 'pretrain' && live.attempt === 1 && (live.iteration ?? 0) >= 1;
      },
      { timeoutMs: 120_000, everyMs: 200 },
    );
    const child = spawnGroup(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), 'logs', handle.workflowId, '-f'], {
      cwd: ROOT,
      env: { ...process.env, ...cliEnv() },
    });
    let stdout = '';
    let stderr = '';
    let firstBytesAt: number | undefined;
    child.stdout.on('data', (d: Buffer) => {
      firstBytesAt ??= Date.now();
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(0);
    const { state } = await outcomeOf(handle);
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    // It was reading while attempt 1 still ran, and it printed both attempts, each exactly as its file.
    expect(firstBytesAt).toBeLessThan(pretrain.attempts[0].endedAt!);
    expect(stdout).toBe(fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8') + fs.readFileSync(pretrain.attempts[1].logFile!, 'utf8'));
    expect(stderr).toMatch(/attempt 1 of stage pretrain ended; attempt 2 of stage pretrain follows/);
  }, 300_000);

  it("reads a log on a node's local disk through that node's worker, chunk by chunk", async () => {
    const pool = `${t.config.taskQueue}-nodes`;
    const nodeWorker = await createLinkflowWorker({ config: { ...t.config, taskQueue: pool }, node: { node: 'n1', address: '127.0.0.1' } });
    const running = nodeWorker.run();
    try {
      const spec = pretrainSpec('logs-node', { trainIters: 10, env: {} });
      spec.stages = spec.stages.slice(0, 1);
      spec.cluster = { ...(spec.cluster as object), taskQueue: pool };
      const { state, handle } = await runSpec(t, specFile(spec));
      const attempt = state.stages[0].attempts[0];
      expect(attempt.node).toBe('n1');
      // Bigger than one chunk, so the reader must continue from offsets.
      fs.appendFileSync(attempt.logFile!, `${'x'.repeat(99)}\n`.repeat(10_000));
      const cli = await runCli(['logs', handle.workflowId, '--stage', 'data', '--via-node'], cliEnv());
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toBe(fs.readFileSync(attempt.logFile!, 'utf8'));
      // Each chunk was an activity on the node's own queue.
      const readers = await until(
        'the chunk readers in visibility',
        async () => {
          const found = [];
          // This pipeline's readers (an earlier test's run on the pool of the in-process worker).
          for await (const w of t.client.workflow.list({ query: `WorkflowType = '${readLogChunkWorkflowType}' AND TaskQueue = '${pool}'` })) found.push(w);
          return found.length >= 3 && found;
        },
        { timeoutMs: 30_000, everyMs: 500 },
      );
      for (const reader of readers) {
        const events = (await t.client.workflow.getHandle(reader.workflowId).fetchHistory()).events ?? [];
        const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes)?.activityTaskScheduledEventAttributes;
        expect(scheduled?.activityType?.name).toBe('readLogChunk');
        expect(scheduled?.taskQueue?.name).toBe(`${pool}@n1`);
      }
      // n1 gone (another node of the pool runs the readers): no worker polls n1's queue, and the error says so.
      const n2 = await createLinkflowWorker({ config: { ...t.config, taskQueue: pool }, node: { node: 'n2', address: '127.0.0.1' } });
      const n2Running = n2.run();
      try {
        nodeWorker.shutdown();
        await running;
        const gone = await runCli(['logs', handle.workflowId, '--stage', 'data', '--via-node'], cliEnv());
        expect(gone.code).toBe(1);
        expect(gone.stderr).toMatch(/node n1 did not serve .*no worker polls its queue .*@n1: is `linkflow worker --node n1` running\?/);
      } finally {
        n2.shutdown();
        await n2Running;
        await n2.close();
      }
    } finally {
      nodeWorker.shutdown();
      await running;
      await nodeWorker.close();
    }
  }, 300_000);

  it('a worker reads attempt logs only', async () => {
    await expect(readLogChunk({ file: '/etc/passwd', offset: 0 })).rejects.toThrow(/not an attempt log/);
    await expect(readLogChunk({ file: '/x/logs/../../etc/attempt-1-2026.log', offset: 0 })).rejects.toThrow(/not an attempt log/);
  });
});

describe('which log', () => {
  const stage = (over: Partial<StageState>): StageState => ({ name: 'pretrain', kind: 'pretrain', status: 'running', output: '/o', attempts: [], ...over });
  const state = (s: StageState): PipelineState => ({ pipeline: 'p', status: 'running', currentStage: s.name, stages: [s] });
  const failed = { attempt: 1, outcome: 'failed' as const, logFile: '/w/p/pretrain/logs/attempt-1-x.log', node: 'n1' };

  it("is the running attempt's (from its heartbeat) unless an attempt is asked for", () => {
    const s = state(stage({ attempts: [failed] }));
    const live = { stage: 'pretrain', attempt: 2, logFile: '/w/p/pretrain/logs/attempt-2-y.log', node: 'n2' };
    expect(logTarget(s, live, {}, false)).toEqual({ kind: 'log', stage: 'pretrain', attempt: 2, file: live.logFile, node: 'n2', running: true });
    expect(logTarget(s, live, { attempt: 1 }, false)).toMatchObject({ kind: 'log', attempt: 1, file: failed.logFile, node: 'n1', running: false });
  });

  it('waits for an attempt that may still start, and says so for one that never will', () => {
    const retrying = state(stage({ status: 'retrying', attempts: [failed] }));
    expect(logTarget(retrying, undefined, { attempt: 2 }, false)).toMatchObject({ kind: 'pending' });
    const done = state(stage({ status: 'failed', attempts: [failed] }));
    expect(logTarget(done, undefined, { attempt: 2 }, false)).toEqual({ kind: 'none', why: 'stage pretrain has no attempt 2 (it made 1)' });
  });

  it("names a gang attempt's failed node, else its last node", () => {
    const gang = { attempt: 1, outcome: 'succeeded' as const, logFile: '/w/l/attempt-1-rank-1-x.log', nodes: ['a', 'b'] };
    expect(logTarget(state(stage({ status: 'succeeded', attempts: [gang] })), undefined, {}, true)).toMatchObject({ node: 'b' });
    expect(logTarget(state(stage({ status: 'failed', attempts: [{ ...gang, outcome: 'failed', failedNode: 'a' }] })), undefined, {}, true)).toMatchObject({
      node: 'a',
    });
  });
});
