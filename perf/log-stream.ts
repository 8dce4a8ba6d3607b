/**
 * Issue 13's logs measurement: `linkflow logs` streams, so its memory stays flat however large the log.
 * One pipeline (a preprocess stage on the emulator) runs on a `linkflow worker --node n1` process; its
 * attempt log is then grown to --size with generated iteration lines, and `linkflow logs` prints it to
 * /dev/null under /usr/bin/time: peak RSS and throughput, for the original small log, the grown log read
 * here, and a --node-size log read through the node's worker (whose peak RSS is read from /proc too).
 *
 *   node --import tsx perf/log-stream.ts [--size 2GiB] [--node-size 256MiB] [--write-results]
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, startPipeline } from '../client/pipeline.ts';
import { loadSpecFile } from '../client/spec-file.ts';
import { searchAttributeTypes } from '../contracts/search-attributes.ts';
import { startDevServer } from '../devserver/dev-server.ts';
import { loadConfig } from '../temporal.config.ts';
import { fiveStageSpec, ROOT, tempDir, writeSpec } from '../testkit/specs.ts';
import { LoadSampler, table, writeResults } from './lib.ts';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '2GiB' },
    'node-size': { type: 'string', default: '256MiB' },
    'write-results': { type: 'boolean', default: false },
  },
});

function bytesOf(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(KiB|MiB|GiB)$/.exec(text);
  if (!m) throw new Error(`expected a size such as 512MiB or 2GiB, got ${text}`);
  return Math.round(Number(m[1]) * { KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 }[m[2] as 'KiB' | 'MiB' | 'GiB']);
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Appends iteration lines as Megatron prints them until the file has `size` bytes, 8 MiB at a time. */
function growLog(file: string, size: number): void {
  const line = (i: number) =>
    ` [2026-11-30 21:00:00] iteration ${String(i).padStart(8)}/ 99999999 | consumed samples: ${i * 8} | elapsed time per iteration (ms): 15.2 | learning rate: 1.000000E-05 | global batch size:     8 | lm loss: 6.123456E+00 | loss scale: 1.0 | grad norm: 1.234 | number of skipped iterations:   0 | number of nan iterations:   0 |\n`;
  const fd = fs.openSync(file, 'a');
  try {
    let i = 1;
    for (let have = fs.fstatSync(fd).size; have < size;) {
      const lines: string[] = [];
      let block = 0;
      while (block < 8 * 2 ** 20 && have + block < size) {
        const l = line(i++);
        lines.push(l);
        block += l.length;
      }
      fs.writeSync(fd, lines.join(''));
      have += block;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** `linkflow logs …` into /dev/null under /usr/bin/time: peak RSS (KiB) and wall time. */
function timedLogs(args: string[], env: Record<string, string>): { peakKiB: number; wallS: number } {
  const started = Date.now();
  const out = fs.openSync('/dev/null', 'w');
  const r = spawnSync('/usr/bin/time', ['-f', 'PEAK_KIB %M', process.execPath, path.join(ROOT, 'bin', 'linkflow.js'), 'logs', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', out, 'pipe'],
    encoding: 'utf8',
  });
  fs.closeSync(out);
  const peak = /PEAK_KIB (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !peak) throw new Error(`linkflow logs ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { peakKiB: Number(peak[1]), wallS: (Date.now() - started) / 1000 };
}

/** The peak resident set of a live process (VmHWM), in KiB. */
function peakOf(pid: number): number {
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

async function main(): Promise<void> {
  const size = bytesOf(values.size);
  const nodeSize = bytesOf(values['node-size']);
  const sampler = new LoadSampler().start();
  const server = await startDevServer({ ui: false, searchAttributes: searchAttributeTypes() });
  const taskQueue = `log-stream-${process.pid}`;
  const env = { TEMPORAL_ADDRESS: server.address, LINKFLOW_TASK_QUEUE: taskQueue };
  const worker = spawn(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), 'worker', '--node', 'n1', '--address', '127.0.0.1'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: 'ignore',
  });
  const workerExited = new Promise((r) => worker.once('exit', r));
  const dir = tempDir('log-stream');
  const config = loadConfig({ address: server.address, taskQueue }, {});
  const client = await connectClient(config);
  try {
    const spec = fiveStageSpec('log-stream', path.join(dir, 'ws'));
    spec.stages = spec.stages.slice(0, 1);
    const planned = loadSpecFile(writeSpec(dir, spec));
    if (!planned.ok) throw new Error('spec invalid');
    const handle = await startPipeline(client, config, planned.plan);
    const { state } = await outcomeOf(handle);
    const attempt = state?.stages[0].attempts[0];
    if (!attempt?.logFile || attempt.node !== 'n1') throw new Error(`the stage did not run on n1: ${JSON.stringify(attempt)}`);
    const args = [handle.workflowId, '--stage', 'data'];
    const small = fs.statSync(attempt.logFile).size;
    const rows: string[][] = [];
    const row = (what: string, bytes: number, r: { peakKiB: number; wallS: number }) =>
      rows.push([what, mib(bytes), mib(r.peakKiB * 1024), `${r.wallS.toFixed(1)} s`, `${(bytes / 2 ** 20 / r.wallS).toFixed(0)} MiB/s`]);
    row('here, the attempt log as written', small, timedLogs(args, env));
    growLog(attempt.logFile, nodeSize);
    const workerBefore = peakOf(worker.pid!);
    row("through the node's worker (--via-node)", nodeSize, timedLogs([...args, '--via-node'], env));
    const workerPeak = peakOf(worker.pid!);
    growLog(attempt.logFile, size);
    row('here, grown', size, timedLogs(args, env));
    sampler.stop();
    const lines = [
      `linkflow logs: peak RSS of the command while it prints a log to /dev/null (/usr/bin/time %M)`,
      '',
      table(['log read', 'log size', 'peak RSS of linkflow logs', 'wall', 'throughput'], rows),
      '',
      `The worker (linkflow worker --node n1) that served the --via-node read: peak RSS ${mib(workerBefore * 1024)} before it, ${mib(workerPeak * 1024)} after it.`,
      'Reads are bounded: 1 MiB at a time here, 384 KiB per chunk through the worker (one short workflow per chunk),',
      'and each chunk is written out before the next is read, so memory does not grow with the log.',
      "Through the worker each chunk is a workflow whose history holds the chunk (the activity's result and the",
      "workflow's): that path suits the tail of a log or a moderate one; a multi-GB log is read where it is visible.",
    ];
    console.log(lines.join('\n'));
    if (values['write-results']) {
      const out = writeResults(
        'RESULTS-logs.md',
        'Streaming logs (issue 13)',
        `node --import tsx perf/log-stream.ts --size ${values.size} --node-size ${values['node-size']} --write-results`,
        lines,
        sampler,
      );
      console.log(`\nwrote ${out}`);
    }
  } finally {
    worker.kill('SIGTERM');
    await workerExited;
    await client.connection.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
