/**
 * Multi-node gangs on one machine: `linkflow worker --queue POOL --node NAME` processes stand for
 * the nodes, the emulator's torchrun joins their ranks over TCP. A rank that fails takes the gang
 * down (the other ranks are cancelled, no trainer is left) and the gang restarts from the newest
 * complete checkpoint.
 */
import type { ChildProcess } from 'node:child_process';
import type { WorkflowHandle } from '@temporalio/client';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { checkpointAndStopSignal } from '../contracts/workflows.ts';
import { startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { planFile } from '../testkit/temporal.ts';
import { fastRetryConfig, processesMentioning, until } from '../testkit/wait.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';

let server: DevServer;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  server = await startDevServer({ ui: false });
});
afterAll(async () => {
  stopWorkers(workers);
  await server?.stop();
});

function node(pool: string, name: string): Promise<ChildProcess> {
  return startWorkerProcess(server.address, ['--queue', pool, '--node', name, '--address', '127.0.0.1'], workers);
}

/** A pool of node workers of its own, a client with short retries, and a workspace. */
async function cluster(name: string, nodes: string[], heartbeatTimeout: string) {
  const pool = `${name}-${process.pid}`;
  const started = await Promise.all(nodes.map((n) => node(pool, n)));
  const config = fastRetryConfig(server.address, heartbeatTimeout);
  const client = await connectClient(config);
  const dir = tempDir(name);
  return { pool, workers: started, config, client, dir, ws: path.join(dir, 'ws') };
}

/** Data, weights (resharded for pp 2) and a pretraining stage on two nodes of one device each: node 1 owns the second pipeline stage. */
function gangSpec(name: string, ws: string, cluster: Record<string, unknown>, pretrain: { trainIters: number; env?: Record<string, string> }): RawSpec {
  const spec = fiveStageSpec(name, ws, { trainIters: pretrain.trainIters, saveInterval: 10, pretrainEnv: pretrain.env });
  spec.cluster = { devicesPerNode: 1, ...cluster };
  spec.parallel = { tp: 1, pp: 2 };
  spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(s.name as string));
  return spec;
}

/** Waits until the gang's last node has logged past an iteration (heartbeats carry it). */
async function trainedPast(handle: WorkflowHandle, iteration: number): Promise<void> {
  await until(
    `the gang to train past iteration ${iteration}`,
    async () => {
      const snap = await snapshot(handle);
      return snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= iteration ? true : undefined;
    },
    { timeoutMs: 120_000 },
  );
}

function rankLogs(ws: string, pipeline: string, attempt: number): string[] {
  const dir = path.join(ws, pipeline, 'pretrain', 'logs');
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`attempt-${attempt}-rank-`))
    .sort();
}

describe('a two-node gang', () => {
  it('forms on the named hosts; rank 1 crashes, both ranks stop and the gang restarts from the checkpoint', async () => {
    const { pool, config, client, dir, ws } = await cluster('gang', ['n1', 'n2'], '10s');
    const spec = gangSpec('gang', ws, { nodes: 2, hosts: ['n1', 'n2'] }, { trainIters: 40, env: { MLEMU_FAULTS: 'node1:crash@15' } });
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), pool);
    const { state, failure } = await outcomeOf(handle);
    expect(failure).toBeUndefined();
    expect(state?.status).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    const [crashed, resumed] = pretrain.attempts;
    expect(crashed.outcome).toBe('failed');
    // Rank 0 lost its peer (a communication error); the failure is blamed on the rank that crashed.
    expect(crashed.failureClass).toBe('exception');
    expect(crashed.failedNode).toBe('n2');
    expect(crashed.nodes).toEqual(['n1', 'n2']);
    expect(resumed.outcome).toBe('succeeded');
    expect(resumed.nodes).toEqual(['n1', 'n2']);
    expect(resumed.loadedIteration).toBe(10);
    expect(pretrain.finalIteration).toBe(40);
    // One log per rank and attempt; rank 0's first attempt ended because its peer was gone.
    expect(rankLogs(ws, 'gang', 1)).toHaveLength(2);
    expect(rankLogs(ws, 'gang', 2)).toHaveLength(2);
    const rank0 = fs.readFileSync(path.join(ws, 'gang', 'pretrain', 'logs', rankLogs(ws, 'gang', 1)[0]), 'utf8');
    expect(rank0).toMatch(/node rank 0 of 2 on n1/);
    expect(rank0).toMatch(/HCCL|linkflow: attempt cancelled/);
    // Both nodes wrote their shards of the final checkpoint.
    const saveDir = path.join(ws, 'gang', 'pretrain', 'checkpoints');
    expect(fs.readFileSync(path.join(saveDir, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('40');
    expect(fs.readdirSync(path.join(saveDir, 'iter_0000040')).sort()).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    expect(processesMentioning(ws)).toEqual([]);
    await client.connection.close();
  });

  it('every torchrun stage runs as a gang: pretrain, finetune, evaluate and inference on two nodes', async () => {
    const { pool, config, client, dir, ws } = await cluster('gangall', ['x1', 'x2'], '10s');
    const spec = fiveStageSpec('gangall', ws, { trainIters: 20, saveInterval: 10 });
    spec.cluster = { devicesPerNode: 1, nodes: 2 };
    spec.parallel = { tp: 1, pp: 2 };
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), pool);
    const { state, failure } = await outcomeOf(handle);
    expect(failure).toBeUndefined();
    for (const name of ['pretrain', 'finetune', 'evaluate', 'generate']) {
      const stage = state!.stages.find((s) => s.name === name)!;
      expect(stage.status, name).toBe('succeeded');
      expect(stage.attempts.at(-1)!.nodes, name).toEqual(['x1', 'x2']);
    }
    expect(state!.stages.find((s) => s.name === 'evaluate')!.evalResults?.map((r) => r.task)).toEqual(['mmlu']);
    expect(JSON.parse(fs.readFileSync(path.join(ws, 'gangall', 'evaluate', 'results.json'), 'utf8')).results[0].task).toBe('mmlu');
    expect(processesMentioning(ws)).toEqual([]);
    await client.connection.close();
  });

  it('checkpoint now and stop on a gang: both nodes save the same iteration, the attempt is stopped, not failed', async () => {
    const { pool, config, client, dir, ws } = await cluster('gangstop', ['s1', 's2'], '10s');
    const spec = gangSpec('gangstop', ws, { nodes: 2, hosts: ['s1', 's2'] }, { trainIters: 300 });
    (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = '30';
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { exitSignalHandler: true, saveInterval: 100 },
    );
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), pool);
    await trainedPast(handle, 15);
    await handle.signal(checkpointAndStopSignal);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('stopped');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts).toHaveLength(1);
    expect(pretrain.attempts[0]).toMatchObject({ outcome: 'stopped', nodes: ['s1', 's2'] });
    const stoppedAt = pretrain.attempts[0].lastIteration!;
    expect(stoppedAt).toBeGreaterThanOrEqual(15);
    const saveDir = path.join(ws, 'gangstop', 'pretrain', 'checkpoints');
    expect(fs.readFileSync(path.join(saveDir, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe(String(stoppedAt));
    expect(processesMentioning(ws)).toEqual([]);
    await client.connection.close();
  });

  it('a node drained (SIGTERM) mid-training: every node saves the same last checkpoint and the gang re-forms without recomputing', async () => {
    const {
      pool,
      config,
      client,
      dir,
      ws,
      workers: [, second],
    } = await cluster('gangdrain', ['d1', 'd2', 'd3'], '5s');
    const spec = gangSpec('gangdrain', ws, { nodes: 2 }, { trainIters: 200 });
    (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = '30';
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { exitSignalHandler: true, saveInterval: 50 },
    );
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), pool);
    await trainedPast(handle, 15);
    second.kill('SIGTERM');

    const { state, failure } = await outcomeOf(handle);
    expect(failure).toBeUndefined();
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    const drained = pretrain.attempts[0];
    expect(drained.nodes).toEqual(['d1', 'd2']);
    expect(drained.failureClass).toBe('killed');
    expect(drained.failedNode).toBe('d2');
    expect(drained.reason).toContain('this node was drained');
    const last = pretrain.attempts.at(-1)!;
    expect(last.outcome).toBe('succeeded');
    expect(last.nodes).toEqual(['d1', 'd3']);
    // Saved where it stopped, between two save-interval checkpoints: nothing to recompute.
    expect(last.loadedIteration).toBe(drained.lastIteration);
    expect(last.recomputed).toBe(0);
    expect(pretrain.finalIteration).toBe(200);
    expect(processesMentioning(ws)).toEqual([]);
    await client.connection.close();
  });

  it('placed on free nodes of a pool; a node killed with SIGKILL takes its rank down and the gang re-forms on the nodes left', async () => {
    const {
      pool,
      config,
      client,
      dir,
      ws,
      workers: [a, b],
    } = await cluster('gangpool', ['a', 'b', 'c'], '5s');
    const spec = gangSpec('gangpool', ws, { nodes: 2 }, { trainIters: 300 });
    (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = '30';
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), pool);

    await trainedPast(handle, 20);
    const first = (await snapshot(handle)).state?.stages.find((s) => s.name === 'pretrain');
    // The first free nodes by name.
    expect(first?.note).toContain('node ranks on a, b');
    b.kill('SIGKILL');

    const { state, failure } = await outcomeOf(handle);
    expect(failure).toBeUndefined();
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    const lost = pretrain.attempts[0];
    expect(lost.nodes).toEqual(['a', 'b']);
    expect(lost.failedNode).toBe('b');
    expect(lost.failureClass).toBe('node-lost');
    const last = pretrain.attempts.at(-1)!;
    expect(last.outcome).toBe('succeeded');
    expect(last.nodes).toEqual(['a', 'c']);
    expect(last.loadedIteration).toBeGreaterThanOrEqual(20);
    expect(pretrain.finalIteration).toBe(300);
    expect(processesMentioning(ws)).toEqual([]);
    expect(a.exitCode).toBeNull();
    await client.connection.close();
  });
});
