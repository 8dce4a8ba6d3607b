/**
 * Issue 4's recovery benchmarks, measured in one run against a real Temporal dev server, real
 * `linkflow worker` processes and the ModelLink emulator:
 *   1. detection latency per fault kind, 2. recovery latency split into its parts,
 *   3. iterations recomputed per fault against the save interval,
 *   4. goodput with crashes at a given MTBF: no faults, a fixed save interval, the Young/Daly interval.
 *
 *   node --import tsx perf/recovery.ts [--quick] [--write-results] [--sections detect,recompute,goodput] [...]
 *
 * See perf/README.md; `--help` lists every parameter. This file runs the sections; perf/recovery/
 * holds the parameters (params.ts), running one pipeline (pipeline.ts), a fault's timeline
 * (samples.ts), the measured scenarios (scenarios.ts) and the report (report.ts).
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectClient } from '../client/connect.ts';
import { startDevServer } from '../devserver/dev-server.ts';
import { loadConfig } from '../temporal.config.ts';
import { EMULATOR, ROOT, tempDir } from '../testkit/specs.ts';
import { processesMentioning } from '../testkit/wait.ts';
import { stopWorkers } from '../testkit/workers.ts';
import { LoadSampler } from './lib.ts';
import { elapsedMs, log, parseParams, printHelp } from './recovery/params.ts';
import type { Ctx } from './recovery/pipeline.ts';
import { header, section1, section2, section3, section4 } from './recovery/report.ts';
import { ensureWorkers, faultKind, goodputSection, recomputeSection, type KindResult } from './recovery/scenarios.ts';

async function main(): Promise<void> {
  const params = parseParams();
  if (params.help) {
    printHelp();
    return;
  }
  const load = new LoadSampler().start();
  const root = tempDir('bench');
  log(`workspaces under ${root}; starting the Temporal dev server`);
  const server = await startDevServer({ ui: false, log: (m) => log(m) });
  const queue = `bench-${process.pid}`;
  const workers: ChildProcess[] = [];
  let client: Client | undefined;
  const cleanup = async () => {
    stopWorkers(workers);
    await client?.connection.close().catch(() => undefined);
    await server.stop();
    if (!params.keep) fs.rmSync(root, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    log('interrupted; stopping workers and the server');
    void cleanup().finally(() => process.exit(130));
  });

  const sections: string[] = [];
  const print = (s: string) => {
    sections.push(s);
    console.log(`\n${s}\n`);
  };
  let ctx: Ctx | undefined;
  try {
    const config = loadConfig(
      {
        address: server.address,
        taskQueue: queue,
        retry: {
          maximumAttempts: 100,
          initialInterval: params.backoff,
          backoffCoefficient: 1,
          maximumInterval: params.backoff,
          infrastructureAttempts: 100,
          infrastructureInitialInterval: params.backoff,
        },
        activity: { heartbeatTimeout: params.heartbeatTimeout, startToCloseTimeout: '1h' },
      },
      {},
    );
    client = await connectClient(config);
    const emulator = path.join(root, 'emulator');
    fs.cpSync(EMULATOR, emulator, { recursive: true, filter: (src) => !src.includes('__pycache__') });
    ctx = { params, server, client, config, queue, workers, root, emulator };
    await ensureWorkers(ctx, 2);

    if (params.sections.has('detect')) {
      const results: KindResult[] = [];
      for (const kind of ['crash', 'sigkill', 'hccl', 'hang', 'worker'] as const) {
        const r = await faultKind(ctx, kind);
        if (r.failure) log(`${kind}: ${r.failure}`);
        results.push(r);
      }
      print(section1(results, params));
      print(section2(results));
    }
    if (params.sections.has('recompute')) print(section3(await recomputeSection(ctx)));
    if (params.sections.has('goodput')) print(section4(await goodputSection(ctx), params));
  } finally {
    await cleanup();
    load.stop();
  }
  const leftovers = processesMentioning(root);
  if (leftovers.length) log(`processes still mention the bench workspace:\n${leftovers.join('\n')}`);

  const report = `${header(ctx!, load, elapsedMs())}\n\n${sections.join('\n\n')}\n`;
  if (params.writeResults) {
    const file = path.join(ROOT, 'perf', 'RESULTS.md');
    fs.writeFileSync(file, report);
    log(`wrote ${path.relative(ROOT, file)}`);
  }
  log(`done in ${(elapsedMs() / 60_000).toFixed(1)} min`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
