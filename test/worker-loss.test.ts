/**
 * A worker killed with SIGKILL during training: its trainer does not survive it, and the next
 * attempt runs on another worker, resuming from the newest checkpoint, with no two trainers at once.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
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

function startWorker(queue: string): Promise<ChildProcess> {
  return startWorkerProcess(server.address, ['--queue', queue], workers);
}

describe('a worker killed during training', () => {
  it('takes its trainer with it; the next attempt resumes on another worker', async () => {
    const queue = `loss-${process.pid}`;
    const workerA = await startWorker(queue);
    const config = fastRetryConfig(server.address, '4s');
    const client = await connectClient(config);
    const dir = tempDir('workerloss');
    const ws = path.join(dir, 'ws');
    // The trainer hangs at 30 (prints nothing more), so only the supervisor, not a broken pipe, can stop it.
    const spec = fiveStageSpec('workerloss', ws, { trainIters: 400, pretrainEnv: { MLEMU_FAULTS: 'hang@30' } });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = '30';
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), queue);

    await until('training to reach the hang at 30', async () => {
      const snap = await snapshot(handle);
      return snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= 29 ? true : undefined;
    });
    expect(processesMentioning(ws).length).toBeGreaterThan(0);
    workerA.kill('SIGKILL');
    // The trainer (and its supervisor) stop with the worker, before any other attempt can start.
    await until('the trainer to stop', async () => processesMentioning(ws).length === 0, { timeoutMs: 15_000 });

    await startWorker(queue);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts[0].failureClass).toBe('node-lost');
    expect(pretrain.attempts[1].outcome).toBe('succeeded');
    expect(pretrain.attempts[1].loadedIteration).toBeGreaterThanOrEqual(20);
    expect(pretrain.finalIteration).toBe(400);
    await client.connection.close();
  });

  it('SIGTERM (a node drain): the trainer saves a last checkpoint (--exit-signal-handler, on by default) and nothing is recomputed', async () => {
    const queue = `drain-${process.pid}`;
    const workerA = await startWorker(queue);
    const config = fastRetryConfig(server.address, '10s');
    const client = await connectClient(config);
    const dir = tempDir('drain');
    const spec = fiveStageSpec('drain', path.join(dir, 'ws'), { trainIters: 200 });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = '30';
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), queue);

    await until('training past iteration 25', async () => {
      const snap = await snapshot(handle);
      return snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= 25 ? true : undefined;
    });
    workerA.kill('SIGTERM');
    await new Promise<void>((resolve) => workerA.once('exit', () => resolve()));
    await startWorker(queue);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    const [drained, resumed] = pretrain.attempts;
    expect(drained.failureClass, JSON.stringify(pretrain.attempts, null, 1)).toBe('killed');
    expect(fs.readFileSync(drained.logFile!, 'utf8')).toContain('exiting program after receiving SIGTERM.');
    // The next attempt starts where the drained one stopped, not at the last save interval.
    expect(resumed.loadedIteration).toBe(drained.lastIteration);
    expect(resumed.recomputed).toBe(0);
    expect(pretrain.finalIteration).toBe(200);
    await client.connection.close();
  });
});
