/**
 * The pool's allocator on a real dev server with several node workers (`linkflow worker --node`
 * processes on this machine): no node runs two attempts, the queue is served in order, unhealthy and
 * blamed nodes are quarantined, dead nodes and dead holders are cleaned up, and the allocator keeps its
 * state across a server restart and its own continue-as-new.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { poolView } from '../client/pool.ts';
import { poolWorkflowId } from '../contracts/pool.ts';
import type { AttemptRecord, PipelineState } from '../contracts/run-state.ts';
import { startDevServer, type DevServer } from '../devserver/dev-server.ts';
import type { PoolView } from '../pool/view.ts';
import { runCli } from '../testkit/cli.ts';
import { fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { planFile } from '../testkit/temporal.ts';
import { fastRetryConfig, processesMentioning, until } from '../testkit/wait.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';

let server: DevServer;
let client: Client;
const workers: ChildProcess[] = [];
const dir = tempDir('pool');
let dataPrefix: string;

/** Quick renewals and windows, so a lost node or holder is noticed in seconds. */
const POOL_ENV = { LINKFLOW_POOL_RENEW_INTERVAL: '1s', LINKFLOW_POOL_NODE_TIMEOUT: '5s', LINKFLOW_POOL_RECLAIM_INTERVAL: '3s', LINKFLOW_QUARANTINE_AFTER: '2' };

function node(pool: string, name: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  return startWorkerProcess(server.address, ['--queue', pool, '--node', name, '--address', '127.0.0.1'], workers, { ...POOL_ENV, ...env });
}

const config = () => fastRetryConfig(server.address, '10s');

beforeAll(async () => {
  server = await startDevServer({ ui: false });
  client = await connectClient(config());
  // The training data, once: every pipeline below trains from scratch on it.
  await node('prep', 'prep');
  const spec = fiveStageSpec('prep', path.join(dir, 'ws'));
  spec.stages = spec.stages.filter((s) => s.name === 'data');
  const { state, failure } = await outcomeOf(await startPipeline(client, config(), planFile(writeSpec(dir, spec, 'prep.yaml')), 'prep'));
  expect(state?.status, failure).toBe('succeeded');
  dataPrefix = path.join(dir, 'ws', 'prep', 'data', 'data', 'data_text_document');
});
afterAll(async () => {
  stopWorkers(workers);
  await client?.connection.close();
  await server?.stop();
});

/** A pipeline of one pretraining stage on `nodes` nodes of one device each (pipeline stages across nodes for a gang). */
function trainSpec(name: string, opts: { nodes?: number; trainIters?: number; iterMs?: number; faults?: string; dp?: boolean } = {}): RawSpec {
  const nodes = opts.nodes ?? 1;
  const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: opts.trainIters ?? 40, saveInterval: 10 });
  spec.cluster = { nodes, devicesPerNode: 1 };
  spec.parallel = { tp: 1, pp: opts.dp ? 1 : nodes };
  (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = String(opts.iterMs ?? 30);
  const pretrain = spec.stages.find((s) => s.name === 'pretrain')!;
  Object.assign(pretrain, { data: dataPrefix, globalBatchSize: opts.dp ? 6 : 8, env: opts.faults ? { MLEMU_FAULTS: opts.faults } : {} });
  delete pretrain.load;
  spec.stages = [pretrain];
  return spec;
}

function start(pool: string, spec: RawSpec): Promise<WorkflowHandle> {
  return startPipeline(client, config(), planFile(writeSpec(dir, spec, `${spec.name as string}.yaml`)), pool);
}

async function finished(handle: WorkflowHandle): Promise<PipelineState> {
  const { state, failure } = await outcomeOf(handle);
  expect(state?.status, failure).toBe('succeeded');
  return state!;
}

function attemptsOf(state: PipelineState): AttemptRecord[] {
  return state.stages[0].attempts;
}

function view(pool: string): Promise<PoolView> {
  return poolView(client, pool);
}

/**
 * Samples which attempts each node runs: every attempt is a supervisor process under its node's
 * worker. Returns the most attempts seen on one node at once, and how many samples saw any.
 */
function sampleNodes(): { stop(): { maxPerNode: number; busySamples: number } } {
  let maxPerNode = 0;
  let busySamples = 0;
  const timer = setInterval(() => {
    const perWorker = new Map<string, number>();
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervisor.mjs')) continue;
        const ppid = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1];
        perWorker.set(ppid, (perWorker.get(ppid) ?? 0) + 1);
      } catch {
        // It ended while we looked.
      }
    }
    if (perWorker.size > 0) busySamples++;
    maxPerNode = Math.max(maxPerNode, ...perWorker.values());
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      return { maxPerNode, busySamples };
    },
  };
}

describe('the pool allocator', () => {
  it('two gangs asking for the last free nodes at once: one runs, the other waits; no node runs two attempts, single-node stages included', async () => {
    const pool = `twogangs-${process.pid}`;
    await Promise.all(['a', 'b', 'c'].map((n) => node(pool, n)));
    const sampler = sampleNodes();
    const handles = await Promise.all([
      start(pool, trainSpec('gang1', { nodes: 2, trainIters: 60 })),
      start(pool, trainSpec('gang2', { nodes: 2, trainIters: 60 })),
      start(pool, trainSpec('single', { trainIters: 60 })),
    ]);
    const waited = await until(
      'one gang to wait for nodes',
      async () => {
        for (const h of handles.slice(0, 2)) {
          const s = (await snapshot(h)).state?.stages[0];
          if (s?.status === 'waiting-for-nodes') return s.note;
        }
        return undefined;
      },
      { timeoutMs: 60_000, everyMs: 100 },
    );
    expect(waited).toMatch(/waiting for 2 nodes; \d free of 3 .* in pool twogangs-\d+: position 1 in the queue/);
    const [g1, g2, single] = await Promise.all(handles.map(finished));
    const { maxPerNode, busySamples } = sampler.stop();
    expect(busySamples).toBeGreaterThan(5);
    expect(maxPerNode).toBe(1);
    const [a1, a2] = [attemptsOf(g1)[0], attemptsOf(g2)[0]];
    expect(a1.nodes).toHaveLength(2);
    expect(a2.nodes).toHaveLength(2);
    // Three nodes, two gangs of two: one gang ran after the other.
    const [first, second] = a1.startedAt! < a2.startedAt! ? [a1, a2] : [a2, a1];
    expect(second.startedAt!).toBeGreaterThanOrEqual(first.endedAt! - 1000);
    expect(attemptsOf(single)[0].node).toBeDefined();
    expect(processesMentioning(path.join(dir, 'ws', 'gang1'))).toEqual([]);
  });

  it('a 3-node gang at the head of the queue is not overtaken by a stream of 1-node stages', async () => {
    const pool = `fifo-${process.pid}`;
    await Promise.all(['f1', 'f2', 'f3'].map((n) => node(pool, n)));
    const early = await Promise.all([start(pool, trainSpec('early1', { trainIters: 80 })), start(pool, trainSpec('early2', { trainIters: 80 }))]);
    await until('both early stages to run', async () => (await view(pool)).nodes.filter((n) => n.state === 'running').length === 2, { timeoutMs: 60_000 });
    const gang = await start(pool, trainSpec('big', { nodes: 3, dp: true, trainIters: 30 }));
    await until('the gang to queue', async () => (await view(pool)).queue.some((q) => q.holder.pipeline === 'big'), { timeoutMs: 30_000 });
    // A stream of small stages, each asking after the gang did, while the early ones free their nodes.
    const later: WorkflowHandle[] = [];
    for (let i = 0; i < 4; i++) {
      later.push(await start(pool, trainSpec(`later${i}`, { trainIters: 20 })));
      await new Promise((r) => setTimeout(r, 700));
    }
    const big = attemptsOf(await finished(gang))[0];
    expect(big.nodes).toEqual(['f1', 'f2', 'f3']);
    for (const h of [...early, ...later]) await finished(h);
    for (const h of later) {
      const attempt = attemptsOf(await finished(h))[0];
      expect(attempt.startedAt!).toBeGreaterThan(big.startedAt!);
    }
  });

  it('a node whose health check fails is quarantined and the gang forms on the others, without using the job budget', async () => {
    const pool = `health-${process.pid}`;
    const failing = [process.execPath, '-e', "console.error('NPU 3: Health Critical'); process.exit(3)"];
    await Promise.all([node(pool, 'h1', { LINKFLOW_HEALTH_CHECK: JSON.stringify(failing) }), node(pool, 'h2'), node(pool, 'h3')]);
    const state = await finished(await start(pool, trainSpec('healthy', { nodes: 2, trainIters: 20 })));
    expect(attemptsOf(state)).toHaveLength(1);
    expect(attemptsOf(state)[0].nodes).toEqual(['h2', 'h3']);
    const h1 = (await view(pool)).nodes.find((n) => n.name === 'h1')!;
    expect(h1.state).toBe('quarantined');
    expect(h1.quarantine?.reason).toContain('exit status 3');
    expect(h1.quarantine?.reason).toContain('NPU 3: Health Critical');
    const env = { TEMPORAL_ADDRESS: server.address };
    const listed = await runCli(['nodes', '--pool', pool], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/h1\s+quarantined\s+127\.0\.0\.1 .*until \d{4}-.*NPU 3: Health Critical/);
    expect(listed.stdout).toMatch(/h2\s+free/);
    const drained = await runCli(['nodes', 'drain', 'h2', '--pool', pool], env);
    expect(drained.stdout).toContain('h2 drained: it takes nothing new');
    expect((await view(pool)).nodes.find((n) => n.name === 'h2')?.state).toBe('drained');
    await runCli(['nodes', 'undrain', 'h2', '--pool', pool], env);
    const released = await runCli(['nodes', 'release', 'h1', '--pool', pool], env);
    expect(released.stdout).toContain('quarantine cleared');
    expect((await view(pool)).nodes.map((n) => n.state)).toEqual(['free', 'free', 'free']);
    const unknown = await runCli(['nodes', 'drain', 'zz', '--pool', pool], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('node zz is not in pool');
  });

  it('faults of the machine (a segfault on its rank) quarantine a node only from different jobs; then the next attempt runs without it', async () => {
    const pool = `blame-${process.pid}`;
    await Promise.all([node(pool, 'q1'), node(pool, 'q2')]);
    // One job failing twice on q2 counts once (it may be the job): q2 stays in service and the job finishes there.
    const first = await start(pool, trainSpec('blamed-a', { nodes: 2, trainIters: 40, faults: 'pretrain:node1:segfault@15,pretrain:node1:segfault@25' }));
    const a = attemptsOf(await finished(first));
    expect(a.map((x) => [x.outcome, x.failureClass, x.failedNode])).toEqual([
      ['failed', 'segfault', 'q2'],
      ['failed', 'segfault', 'q2'],
      ['succeeded', undefined, undefined],
    ]);
    expect((await view(pool)).nodes.find((x) => x.name === 'q2')).toMatchObject({ state: 'free', blames: 2 });
    // A second job's segfault on q2: faults of the machine in two jobs (LINKFLOW_QUARANTINE_AFTER=2) quarantine it,
    // and the retry runs on the other nodes.
    await node(pool, 'q3');
    const handle = await start(pool, trainSpec('blamed-b', { nodes: 2, trainIters: 40, faults: 'pretrain:node1:segfault@15' }));
    const attempts = attemptsOf(await finished(handle));
    expect(attempts.map((x) => [x.outcome, x.failedNode])).toEqual([
      ['failed', 'q2'],
      ['succeeded', undefined],
    ]);
    expect(attempts[0].nodes).toEqual(['q1', 'q2']);
    expect(attempts[1].nodes).toEqual(['q1', 'q3']);
    const q2 = (await view(pool)).nodes.find((x) => x.name === 'q2')!;
    expect(q2.state).toBe('quarantined');
    expect(q2.quarantine?.reason).toMatch(/faults of the machine in 2 jobs within 60 min, last: pretrain attempt 1: segfault/);
    // Quarantined on jobs' blames alone, it is not a wall: a gang of three (more than the others) still gets it.
    const wide = await start(pool, trainSpec('blamed-c', { nodes: 3, trainIters: 20, dp: true }));
    expect(attemptsOf(await finished(wide)).map((x) => [x.outcome, x.nodes])).toEqual([['succeeded', ['q1', 'q3', 'q2']]]);
  });

  it('a killed node worker leaves the pool within its window, and the grant of a terminated pipeline is reclaimed', async () => {
    const pool = `lost-${process.pid}`;
    const [k1] = await Promise.all([node(pool, 'k1'), node(pool, 'k2')]);
    const handle = await start(pool, trainSpec('lost', { nodes: 2, trainIters: 5000 }));
    await until('both nodes to run the gang', async () => (await view(pool)).nodes.filter((n) => n.state === 'running').length === 2, { timeoutMs: 60_000 });
    k1.kill('SIGKILL');
    await handle.terminate('test: a holder that is gone');
    const gone = await until('k1 to leave the pool', async () => ((await view(pool)).nodes.some((n) => n.name === 'k1') ? undefined : await view(pool)), {
      timeoutMs: 20_000,
    });
    expect(gone.events.map((e) => e.what).join('\n')).toMatch(/left: silent for \d+ s/);
    const reclaimed = await until('k2 to be free again', async () => {
      const v = await view(pool);
      return v.nodes.find((n) => n.name === 'k2')?.state === 'free' ? v : undefined;
    });
    expect(reclaimed.events.map((e) => e.what).join('\n')).toContain('its workflow no longer runs (reclaimed)');
    await until('no trainer left', async () => processesMentioning(path.join(dir, 'ws', 'lost')).length === 0, { timeoutMs: 30_000 });
  });

  it('keeps its grants and queue across a server restart and its own continue-as-new', async () => {
    const dbFile = path.join(dir, 'restart.db');
    const port = Number(server.address.split(':')[1]) + 17;
    const own = await startDevServer({ port, dbFile, ui: false });
    const ownClient = await connectClient({ ...config(), address: own.address });
    const ownWorkers: ChildProcess[] = [];
    const pool = `restart-${process.pid}`;
    const env = { ...POOL_ENV, LINKFLOW_POOL_HISTORY_LIMIT: '100' };
    const startNode = (name: string) => startWorkerProcess(own.address, ['--queue', pool, '--node', name, '--address', '127.0.0.1'], ownWorkers, env);
    let restarted: DevServer | undefined;
    try {
      await Promise.all([startNode('r1'), startNode('r2')]);
      const cfg = { ...config(), address: own.address };
      const submit = (spec: RawSpec) => startPipeline(ownClient, cfg, planFile(writeSpec(dir, spec, `${spec.name as string}.yaml`)), pool);
      // Long enough to hold its node through the restart, even on a loaded machine.
      const single = await submit(trainSpec('holder', { trainIters: 1000 }));
      await until('the single-node stage to run', async () => (await snapshot(single)).live?.iteration !== undefined, { timeoutMs: 60_000 });
      const gang = await submit(trainSpec('waiter', { nodes: 2, trainIters: 20 }));
      const before = await until('the gang to queue', async () => {
        const v = await poolView(ownClient, pool);
        return v.queue.length === 1 ? v : undefined;
      });
      await own.stop();
      await new Promise((r) => setTimeout(r, 2000));
      restarted = await startDevServer({ port, dbFile, ui: false });
      const after = await until('the pool to answer after the restart', () => poolView(ownClient, pool).catch(() => undefined), { timeoutMs: 60_000 });
      expect(after.queue.map((q) => q.holder.pipeline)).toEqual(before.queue.map((q) => q.holder.pipeline));
      // The holder's node (dropped as silent if the restart outlasted the node timeout) is held by its grant again once it renews.
      await until('the holder running on its node again', async () => {
        const v = await poolView(ownClient, pool);
        return (
          v.nodes
            .filter((n) => n.state === 'running')
            .map((n) => n.holder?.pipeline)
            .join() === 'holder'
        );
      });
      const [held, waited] = [attemptsOf((await outcomeOf(single)).state!), attemptsOf((await outcomeOf(gang)).state!)];
      expect(held.at(-1)?.outcome).toBe('succeeded');
      expect(waited.at(-1)?.outcome).toBe('succeeded');
      expect(waited[0].startedAt!).toBeGreaterThanOrEqual(held.at(-1)!.endedAt! - 1000);
      const runs = [];
      for await (const run of ownClient.workflow.list({ query: `WorkflowId = '${poolWorkflowId(pool)}'` })) runs.push(run.status.name);
      expect(runs.filter((s) => s === 'CONTINUED_AS_NEW').length).toBeGreaterThan(0);
      expect(runs.filter((s) => s === 'RUNNING')).toHaveLength(1);
    } finally {
      stopWorkers(ownWorkers);
      await ownClient.connection.close();
      await (restarted ?? own).stop();
    }
  });
});
