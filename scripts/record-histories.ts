/**
 * Records workflow histories for test/replay.test.ts: a pipeline that succeeds after a crash and a
 * retry, one that fails on a bad flag, and a benchmark run (one case measured, one skipped). Run after an intended change to the workflow's
 * commands (and only then):  node --import tsx scripts/record-histories.ts [name…]
 * (names: crash-and-resume, bad-flag, benchmark, gang-crash; default all). Keep the old histories of the ones
 * you did not mean to change: they are what proves running workflows still replay. HISTORY_SUFFIX=-x records them
 * as <name>-x.history.bin beside the old ones (what a change behind `patched` wants: both paths replayed). The gang's
 * recording also keeps its pool's allocator history (pool-allocator<suffix>).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { outcomeOf } from '../client/pipeline.ts';
import { loadSuite } from '../benchmark/suite-file.ts';
import { benchmarkWorkflowType, pipelineWorkflowType, type BenchmarkWorkflow, type PipelineWorkflow } from '../contracts/workflows.ts';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { EMULATOR, fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { planFile, startSpec, startTestTemporal } from '../testkit/temporal.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';
import { retrySettings } from '../temporal.config.ts';
import { poolWorkflowId } from '../contracts/pool.ts';
import type { ChildProcess } from 'node:child_process';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'histories');
const suffix = process.env.HISTORY_SUFFIX ?? '';
/** The file a history is kept in; replay.test.ts replays it under this name as its workflow id. */
const fileOf = (name: string) => `${name}${suffix}.history.bin`;
function save(name: string, history: History): void {
  // Protobuf bytes: decoded again by the same @temporalio/proto module the worker uses.
  fs.writeFileSync(path.join(out, fileOf(name)), proto.temporal.api.history.v1.History.encode(history).finish());
  console.log(`recorded ${fileOf(name)}: ${history.events?.length} events`);
}

const only = process.argv.slice(2);
const wanted = (name: string) => only.length === 0 || only.includes(name);

const t = await startTestTemporal();
try {
  const cases: [string, (spec: ReturnType<typeof fiveStageSpec>) => void][] = [
    ['crash-and-resume', (spec) => Object.assign(spec.stages[3], { env: { MLEMU_FAULTS: 'crash@15' } })],
    ['bad-flag', (spec) => Object.assign(spec.stages[3], { args: { '--no-such-flag': '1' }, allowUnknownFlags: true })],
  ];
  for (const [name, edit] of cases.filter(([n]) => wanted(n))) {
    const dir = tempDir(`history-${name}`);
    const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: 20 });
    edit(spec);
    const handle = await startSpec(t, writeSpec(dir, spec));
    await outcomeOf(handle);
    save(name, await handle.fetchHistory());
  }
  if (wanted('benchmark')) await recordBenchmark();
  if (wanted('gang-crash')) await recordGang();
} finally {
  await t.stop();
}

async function recordBenchmark(): Promise<void> {
  const dir = tempDir('history-benchmark');
  const suiteFile = path.join(dir, 'suite.json');
  fs.writeFileSync(
    suiteFile,
    JSON.stringify({
      name: 'replay',
      taskQueue: t.config.taskQueue,
      workspace: './bench',
      iterations: { warmup: 1, measured: 3 },
      rows: ['llama2-7b-seq4k-mcore-1x8-bf16', 'aquila2-34b-seq4k-legacy-2x8-bf16'],
      modellink: { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun') },
    }),
  );
  const bench = await t.client.workflow.start<BenchmarkWorkflow>(benchmarkWorkflowType, {
    workflowId: fileOf('benchmark') /* replay.test.ts replays under the file name */,
    taskQueue: t.config.taskQueue,
    args: [{ suite: loadSuite(suiteFile) }],
  });
  await bench.result();
  save('benchmark', await bench.fetchHistory());
}

/** A two-node gang whose rank 1 crashes and re-forms: two `linkflow worker --node` processes on a pool of their own. */
async function recordGang(): Promise<void> {
  const pool = `history-gang-${process.pid}`;
  const workers: ChildProcess[] = [];
  try {
    await Promise.all(['n1', 'n2'].map((n) => startWorkerProcess(t.server.address, ['--queue', pool, '--node', n, '--address', '127.0.0.1'], workers)));
    const dir = tempDir('history-gang');
    const spec = fiveStageSpec('gang-crash', path.join(dir, 'ws'), { trainIters: 20, pretrainEnv: { MLEMU_FAULTS: 'node1:crash@15' } });
    spec.cluster = { nodes: 2, devicesPerNode: 1, hosts: ['n1', 'n2'] };
    spec.parallel = { tp: 1, pp: 2 };
    spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(s.name as string));
    const plan = planFile(writeSpec(dir, spec));
    const handle = await t.client.workflow.start<PipelineWorkflow>(pipelineWorkflowType, {
      workflowId: fileOf('gang-crash'),
      taskQueue: pool,
      args: [{ plan, retry: retrySettings(t.config) }],
    });
    await outcomeOf(handle);
    save('gang-crash', await handle.fetchHistory());
    save('pool-allocator', await t.client.workflow.getHandle(poolWorkflowId(pool)).fetchHistory());
  } finally {
    stopWorkers(workers);
  }
}
