/**
 * Issue 11's measurements of the pool allocator:
 *   1. decision time per request of the allocator's rules (pool/allocator.ts) with 256 simulated
 *      nodes and a mixed stream of 1- to 64-node requests (median and p99);
 *   2. the head-of-queue wait of a 64-node gang under a stream of small requests, against its wait
 *      with no small requests, in simulated time driven through the same rules;
 *   3. on a real dev server with 16 `linkflow worker` processes: the time from a 16-node gang's
 *      pipeline start to its grant, and to all 16 ranks running.
 *
 *   node --import tsx perf/pool.ts [--requests 20000] [--nodes 16] [--skip-server] [--write-results]
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, startPipeline } from '../client/pipeline.ts';
import { startDevServer } from '../devserver/dev-server.ts';
import { emptyPool, enqueueRequest, releaseRequest, renewNode, schedule, type PoolState } from '../pool/allocator.ts';
import { fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { planFile } from '../testkit/temporal.ts';
import { fastRetryConfig, processesMentioning, until } from '../testkit/wait.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';
import { fixed, LoadSampler, rng, table, writeResults } from './lib.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    nodes: { type: 'string', default: '16' },
    'skip-server': { type: 'boolean', default: false },
    'write-results': { type: 'boolean', default: false },
  },
});

const POOL_NODES = 256;

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function poolOf(nodes: number): PoolState {
  const state = emptyPool('perf');
  for (let i = 0; i < nodes; i++) renewNode(state, { name: `n${String(i).padStart(3, '0')}`, address: `10.0.${i >> 8}.${i & 255}`, running: 0 }, 0);
  return state;
}

/** 70 % one node, 20 % 2–8, 8 % 16–32, 2 % 64: a training cluster's mix. */
function requestSize(random: () => number): number {
  const r = random();
  if (r < 0.7) return 1;
  if (r < 0.9) return 2 + Math.floor(random() * 7);
  if (r < 0.98) return 16 + Math.floor(random() * 17);
  return 64;
}

/** Decision time: each request is queued and the whole queue served again, as the pool workflow does on every request. */
function decisionTimes(count: number): { ms: number[]; queueMax: number } {
  const random = rng(11);
  const state = poolOf(POOL_NODES);
  const ms: number[] = [];
  let queueMax = 0;
  for (let i = 0; i < count; i++) {
    const holder = { workflowId: `wf${i}`, pipeline: `p${i}`, stage: 'pretrain', attempt: 1 };
    const t0 = process.hrtime.bigint();
    enqueueRequest(state, { id: `r${i}`, holder, count: requestSize(random) }, i);
    schedule(state, i);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    queueMax = Math.max(queueMax, state.queue.length);
    // Grants end at random: the pool stays busy, with a queue.
    for (const id of Object.keys(state.grants)) if (random() < 0.05) releaseRequest(state, id, i);
  }
  return { ms, queueMax };
}

/**
 * Simulated time, in seconds: small requests (1–8 nodes, 60–600 s each) keep the pool busy; at t=1000 a
 * 64-node gang asks. With `stream`, small requests keep arriving after it; without, none do.
 */
function headOfQueueWait(stream: boolean, seed: number): number {
  const random = rng(seed);
  const state = poolOf(POOL_NODES);
  const ends: { at: number; id: string }[] = [];
  // Drawn at arrival, so the requests that came before the gang are the same with and without the stream.
  const lasts = new Map<string, number>();
  let next = 0;
  let gangGranted: number | undefined;
  const gangId = 'gang';
  for (let t = 0; t < 20_000 && gangGranted === undefined; t++) {
    for (const e of ends.filter((x) => x.at === t)) releaseRequest(state, e.id, t);
    // About 80 % of the pool busy: 0.14 requests per second × 4.5 nodes × 330 s ≈ 205 nodes.
    const arrives = random() < 0.14;
    const count = 1 + Math.floor(random() * 8);
    const lasting = 60 + Math.floor(random() * 540);
    if (arrives && (t <= 1000 || stream)) {
      const id = `s${next++}`;
      lasts.set(id, lasting);
      enqueueRequest(state, { id, holder: { workflowId: id, pipeline: id, stage: 'pretrain', attempt: 1 }, count }, t);
    }
    if (t === 1000) enqueueRequest(state, { id: gangId, holder: { workflowId: gangId, pipeline: 'big', stage: 'pretrain', attempt: 1 }, count: 64 }, t);
    for (const g of schedule(state, t)) {
      if (g.request.id === gangId) gangGranted = t;
      else ends.push({ at: t + lasts.get(g.request.id)!, id: g.request.id });
    }
  }
  return gangGranted === undefined ? Infinity : gangGranted - 1000;
}

async function gangOnServer(nodes: number): Promise<{ grantMs: number; ranksMs: number; startupS: number }> {
  const server = await startDevServer({ ui: false });
  const workers: ChildProcess[] = [];
  const pool = `perf-pool-${process.pid}`;
  const dir = tempDir('perf-pool');
  const config = fastRetryConfig(server.address, '30s');
  const client = await connectClient(config);
  try {
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: nodes }, (_, i) =>
        startWorkerProcess(server.address, ['--queue', pool, '--node', `g${String(i).padStart(2, '0')}`, '--address', '127.0.0.1'], workers),
      ),
    );
    const startupS = (Date.now() - t0) / 1000;
    // The data once, on the pool, then the gang: data parallel over all nodes, one device each.
    const prep = fiveStageSpec('prep', path.join(dir, 'ws'));
    prep.stages = prep.stages.filter((s) => s.name === 'data');
    await outcomeOf(await startPipeline(client, config, planFile(writeSpec(dir, prep, 'prep.yaml')), pool));
    const spec = fiveStageSpec('gang16', path.join(dir, 'ws'), { trainIters: 30 });
    spec.cluster = { nodes, devicesPerNode: 1 };
    const pretrain = spec.stages.find((s) => s.name === 'pretrain')!;
    Object.assign(pretrain, { data: path.join(dir, 'ws', 'prep', 'data', 'data', 'data_text_document'), globalBatchSize: nodes });
    delete pretrain.load;
    spec.stages = [pretrain];
    const plan = planFile(writeSpec(dir, spec, 'gang.yaml'));
    const started = Date.now();
    const handle = await startPipeline(client, config, plan, pool);
    const ranksAt = await until(
      `${nodes} ranks running`,
      async () => (processesMentioning(path.join(dir, 'ws', 'gang16')).filter((p) => p.includes('pretrain_gpt.py')).length >= nodes ? Date.now() : undefined),
      { everyMs: 20, timeoutMs: 300_000 },
    );
    const { state } = await outcomeOf(handle);
    const attempt = state?.stages[0].attempts[0];
    if (!attempt?.startedAt) throw new Error(`the gang did not run: ${JSON.stringify(state?.stages[0])}`);
    return { grantMs: attempt.startedAt - started, ranksMs: ranksAt - started, startupS };
  } finally {
    stopWorkers(workers);
    await client.connection.close();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const sampler = new LoadSampler().start();
  const lines: string[] = [];
  const say = (s: string) => {
    console.log(s);
    lines.push(s);
  };
  const { ms, queueMax } = decisionTimes(Number(values.requests));
  say(`1. Decision time per request: ${POOL_NODES} simulated nodes, ${ms.length} requests of 1–64 nodes (70 % one node), queue up to ${queueMax}`);
  say(table(['median ms', 'p99 ms', 'max ms'], [[fixed(percentile(ms, 50), 3), fixed(percentile(ms, 99), 3), fixed(Math.max(...ms), 3)]]));
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
  const rows = seeds.map((seed) => [String(seed), String(headOfQueueWait(false, seed)), String(headOfQueueWait(true, seed))]);
  say(
    `\n2. Head-of-queue wait of a 64-node gang (simulated seconds; small requests of 1–8 nodes lasting 60–600 s keep about 80 % of ${POOL_NODES} nodes busy)`,
  );
  say(table(['seed', 'no small requests after it', 'a stream of small requests'], rows));
  if (!values['skip-server']) {
    const nodes = Number(values.nodes);
    const r = await gangOnServer(nodes);
    say(`\n3. A ${nodes}-node gang on the dev server with ${nodes} linkflow worker processes (started in ${r.startupS.toFixed(1)} s)`);
    say(
      table(['pipeline start → grant', 'pipeline start → all ranks running'], [[`${(r.grantMs / 1000).toFixed(2)} s`, `${(r.ranksMs / 1000).toFixed(2)} s`]]),
    );
  }
  sampler.stop();
  if (values['write-results']) {
    const out = writeResults('RESULTS-pool.md', 'Pool allocator (issue 11)', 'npm run perf:pool -- --write-results', lines, sampler);
    console.log(`\nwrote ${out}`);
  }
}

await main();
