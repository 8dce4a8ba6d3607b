/**
 * Issue 5's benchmark: what the benchmark workflow itself costs per case, on the emulator.
 * One run of benchmarkWorkflow over N single-node table cases on a real dev server; each case's
 * job time is what its attempt log says the process ran ("# launched …, exited … after X s");
 * orchestration is everything else (planning, child workflow, placement, measuring, storing).
 *
 *   node --import tsx perf/benchmark-overhead.ts [--cases 6] [--measured 20] [--write-results]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadSuite } from '../benchmark/suite-file.ts';
import { connectClient } from '../client/connect.ts';
import { tableCases } from '../benchmark/core.ts';
import { startDevServer } from '../devserver/dev-server.ts';
import { loadConfig } from '../temporal.config.ts';
import { EMULATOR, tempDir } from '../testkit/specs.ts';
import { createLinkflowWorker, installRuntime } from '../worker/worker.ts';
import { benchmarkWorkflowType, type BenchmarkOutcome, type BenchmarkWorkflow } from '../contracts/workflows.ts';
import { LoadSampler, mean, table, writeResults } from './lib.ts';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    measured: { type: 'string', default: '20' },
    'write-results': { type: 'boolean', default: false },
  },
});
const caseCount = Number(values.cases);
const iterations = { warmup: Number(values.warmup), measured: Number(values.measured) };

function logFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.log'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Seconds the case's process ran, from the line the attempt's watcher (activities/attempt/watch.ts) appends when it exits. */
function jobSeconds(log: string): number {
  const m = /^# launched .* after ([\d.]+) s$/m.exec(fs.readFileSync(log, 'utf8'));
  if (!m) throw new Error(`${log}: no "# launched … after X s" line`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  installRuntime('ERROR');
  const sampler = new LoadSampler().start();
  const server = await startDevServer({ ui: false });
  const config = loadConfig({ address: server.address, taskQueue: `bench-overhead-${process.pid}` }, {});
  const worker = await createLinkflowWorker({ config });
  const running = worker.run();
  const client = await connectClient(config);
  const dir = tempDir('bench-overhead');
  try {
    // Single-node rows the pool of one worker can run.
    const rows = tableCases()
      .filter((c) => !c.skipReason && c.shape.nodes === 1)
      .slice(0, caseCount)
      .map((c) => c.id);
    const file = path.join(dir, 'suite.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'overhead',
        cluster: 'bench',
        taskQueue: config.taskQueue,
        workspace: './ws',
        rows,
        iterations,
        modellink: { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun') },
      }),
    );
    const suite = loadSuite(file);
    const started = Date.now();
    const handle = await client.workflow.start<BenchmarkWorkflow>(benchmarkWorkflowType, {
      workflowId: `bench-overhead-${Date.now()}`,
      taskQueue: config.taskQueue,
      args: [{ suite }],
    });
    const outcome = (await handle.result()) as BenchmarkOutcome;
    const totalS = (Date.now() - started) / 1000;
    const logs = logFiles(path.join(suite.workspace, 'runs'));
    const jobs = logs.map(jobSeconds);
    const jobS = jobs.reduce((a, b) => a + b, 0);
    const perCaseOrchestration = (totalS - jobS) / rows.length;
    sampler.stop();

    const lines = [
      `benchmark workflow overhead: ${rows.length} cases (${iterations.warmup} warm-up + ${iterations.measured} measured iterations each), verdicts ${JSON.stringify(outcome.counts)}`,
      '',
      table(
        ['measure', 'value'],
        [
          ['whole run, wall', `${totalS.toFixed(2)} s`],
          ['jobs (sum of process run times)', `${jobS.toFixed(2)} s over ${jobs.length} attempts`],
          ['mean job per case', `${mean(jobs).toFixed(2)} s`],
          ['orchestration per case', `${perCaseOrchestration.toFixed(2)} s`],
          ['orchestration ÷ job time', `${((totalS - jobS) / jobS).toFixed(3)}`],
        ],
      ),
      '',
      'Orchestration is the run minus the time its processes ran: the suite and case activities, the child pipeline',
      '(manifest check, placement, heartbeats), measuring the log and writing SQLite. It is per case, so its share',
      'shrinks with real jobs: a real case runs minutes, the emulator runs seconds.',
    ];
    console.log(lines.join('\n'));
    if (values['write-results']) {
      const out = writeResults(
        'RESULTS-benchmark-overhead.md',
        'Benchmark workflow overhead (issue 5)',
        'node --import tsx perf/benchmark-overhead.ts --write-results',
        lines,
        sampler,
        true,
      );
      console.log(`\nwrote ${out}`);
    }
  } finally {
    worker.shutdown();
    await running.catch(() => undefined);
    await worker.close();
    await client.connection.close();
    await server.stop();
  }
}

await main();
