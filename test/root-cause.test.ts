/**
 * Issue 17 end to end, on a real dev server with node workers of a pool and the emulator:
 * - an 8-rank job (one node of 8 devices, tp1/pp2) whose rank 0 crashes while its 7 peers print their
 *   HCCL echoes: the attempt is the crash (`exception`, the job's budget) and no node is blamed;
 * - one node whose worker is SIGKILLed three times and the Temporal server restarted once during a 400-iteration
 *   pretraining run (default pool settings): the node is never quarantined, and the run finishes 400/400.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { poolView } from '../client/pool.ts';
import { startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { getFreePort } from '../node/free-port.ts';
import { runCli } from '../testkit/cli.ts';
import { fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { planFile } from '../testkit/temporal.ts';
import { fastRetryConfig, processesMentioning, until } from '../testkit/wait.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';

let server: DevServer;
let client: Client;
const workers: ChildProcess[] = [];
const config = () => fastRetryConfig(server.address, '4s');
/** Where the server keeps its state, so that it can be restarted with it. */
const serverAt = { port: 0, dbFile: path.join(tempDir('root-cause-server'), 'temporal.db') };

beforeAll(async () => {
  serverAt.port = await getFreePort();
  server = await startDevServer({ ...serverAt, ui: false });
  client = await connectClient(config());
});
afterAll(async () => {
  stopWorkers(workers);
  await client?.connection.close();
  await server?.stop();
});

/** A node worker of `pool` with the pool's default settings, but quick renewals so a restart is seen in seconds. */
function node(pool: string, name: string): Promise<ChildProcess> {
  return startWorkerProcess(server.address, ['--queue', pool, '--node', name, '--address', '127.0.0.1'], workers, {
    LINKFLOW_POOL_RENEW_INTERVAL: '1s',
  });
}

describe('root cause across ranks', () => {
  it("an 8-rank job whose rank 0 crashes is retried from the job's budget and blames no node", async () => {
    const pool = `eight-${process.pid}`;
    await node(pool, 'n8');
    const dir = tempDir('eight-ranks');
    const spec = fiveStageSpec('eight', path.join(dir, 'ws'), { trainIters: 30, saveInterval: 10, pretrainEnv: { MLEMU_FAULTS: 'crash@15' } });
    spec.cluster = { nodes: 1, devicesPerNode: 8 };
    spec.parallel = { tp: 1, pp: 2 };
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    const { state, failure } = await outcomeOf(await startPipeline(client, config(), planFile(writeSpec(dir, spec)), pool));
    expect(state?.status, failure).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => [a.outcome, a.failureClass, a.evidence])).toEqual([
      ['failed', 'exception', 'error'],
      ['succeeded', undefined, undefined],
    ]);
    expect(pretrain.attempts[0].reason).toMatch(/^EZ9999: .*aicore error/);
    // The peers did print their echoes after rank 0's crash, in the same log.
    const log = fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8');
    expect(log.match(/HCCL AllReduce failed/g)?.length ?? 0).toBeGreaterThanOrEqual(7);
    const n8 = (await poolView(client, pool)).nodes.find((n) => n.name === 'n8')!;
    expect(n8.state).not.toBe('quarantined');
    expect(n8.blames ?? 0).toBe(0);
    // `diagnose` says the same, with the echoes it set aside.
    const diagnosed = JSON.parse((await runCli(['diagnose', pretrain.attempts[0].logFile!, '--json'])).stdout);
    expect(diagnosed).toMatchObject({ class: 'exception', budget: 'job', reason: pretrain.attempts[0].reason });
    expect(diagnosed.discounted.length).toBeGreaterThanOrEqual(5);
    expect(diagnosed.discounted[0].why).toMatch(/follows .* at line \d+/);
  });

  it('a node whose worker is SIGKILLed three times and the server restarted once is never quarantined: the run finishes 400/400', async () => {
    const pool = `comeback-${process.pid}`;
    let worker = await node(pool, 'solo');
    const dir = tempDir('comeback');
    const ws = path.join(dir, 'ws');
    const spec = fiveStageSpec('comeback', ws, { trainIters: 400, saveInterval: 50 });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = '20';
    const handle = await startPipeline(client, config(), planFile(writeSpec(dir, spec)), pool);
    const training = (attempt: number) =>
      until(
        `attempt ${attempt} to train`,
        async () => {
          const snap = await snapshot(handle);
          return snap.live?.stage === 'pretrain' && snap.live.attempt === attempt && (snap.live.iteration ?? 0) >= 5 ? true : undefined;
        },
        { timeoutMs: 120_000 },
      );
    // Under the old rules, the third node-lost blame quarantined the only node for 30 min and the run sat waiting.
    for (let kill = 1; kill <= 3; kill++) {
      await training(kill);
      worker.kill('SIGKILL');
      await until('the trainer to stop', async () => processesMentioning(ws).length === 0, { timeoutMs: 15_000 });
      worker = await node(pool, 'solo');
    }
    await training(4);
    await server.stop();
    await new Promise((r) => setTimeout(r, 3000));
    server = await startDevServer({ ...serverAt, ui: false });
    const { state, failure } = await outcomeOf(handle);
    expect(state?.status, failure).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.slice(0, 3).map((a) => a.failureClass)).toEqual(['node-lost', 'node-lost', 'node-lost']);
    expect(pretrain.attempts.at(-1)?.outcome).toBe('succeeded');
    expect(pretrain.finalIteration).toBe(400);
    const view = await poolView(client, pool);
    const solo = view.nodes.find((n) => n.name === 'solo');
    expect(solo?.state).not.toBe('quarantined');
    const events = view.events.map((e) => e.what).join('\n');
    expect(events).not.toMatch(/quarantined/);
    // All three blames come from this one pipeline (which counts once either way): what this proves is that
    // each restarted worker dropped the blames before it. Kills 1 and 2 blamed the node before the next kill's
    // restart (attempt k+1 trains only after attempt k failed and blamed), so the restarts cleared at least those two.
    const cleared = [...events.matchAll(/its worker restarted; (\d+) blames? cleared/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(cleared).toBeGreaterThanOrEqual(2);
  });
});
