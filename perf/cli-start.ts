/**
 * Issue 20's CLI start time: how long `linkflow --help`, `validate`, `status` and `list` take from
 * exec to exit, through the compiled JavaScript in dist/ (what bin/linkflow.js runs when dist/ is
 * current) and through tsx (LINKFLOW_TSX=1: the sources compiled at each start, as every command ran
 * before). `status` and `list` talk to a real dev server started here, holding one finished pipeline.
 * Each command runs --runs times per path, interleaved; the median and the range are reported.
 *
 * `--before DIR` adds a column for another checkout's bin/linkflow.js (e.g. `git worktree add /tmp/before
 * d16c3e8` with node_modules linked: the CLI before issue 20, which loaded every command's modules at once).
 *
 *   npm run build && node --import tsx perf/cli-start.ts [--runs 7] [--before DIR] [--write-results]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildState } from '../bin/build-state.js';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, startPipeline } from '../client/pipeline.ts';
import { loadSpecFile } from '../client/spec-file.ts';
import { searchAttributeTypes } from '../contracts/search-attributes.ts';
import { startDevServer } from '../devserver/dev-server.ts';
import { loadConfig } from '../temporal.config.ts';
import { ROOT } from '../testkit/specs.ts';
import { createLinkflowWorker } from '../worker/worker.ts';
import { LoadSampler, table, writeResults } from './lib.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '7' }, before: { type: 'string' }, 'write-results': { type: 'boolean', default: false } },
});
const runs = Number(values.runs);

function timeOnce(args: string[], env: Record<string, string>, root = ROOT): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'linkflow.js'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`linkflow ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  if (buildState() !== 'fresh') throw new Error('dist/ is not current: run `npm run build` first');
  const sampler = new LoadSampler().start();
  const server = await startDevServer({ ui: false, searchAttributes: searchAttributeTypes() });
  const config = loadConfig({ address: server.address, taskQueue: `perf-cli-${process.pid}` }, {});
  const worker = await createLinkflowWorker({ config });
  const running = worker.run();
  try {
    // One finished pipeline, so `status` reads a real result and `list` finds a row.
    const planned = loadSpecFile(path.join(ROOT, 'examples', 'demo.yaml'), { workspace: path.join(ROOT, '.linkflow', 'perf-cli', String(process.pid)) });
    if (!planned.ok) throw new Error('examples/demo.yaml does not plan');
    const client = await connectClient(config);
    const handle = await startPipeline(client, config, { ...planned.plan, stages: planned.plan.stages.slice(0, 1) });
    await outcomeOf(handle);
    const env = { TEMPORAL_ADDRESS: server.address };
    const commands: [string, string[]][] = [
      ['--help', ['--help']],
      ['validate examples/demo.yaml', ['validate', 'examples/demo.yaml']],
      ['status <id>', ['status', handle.workflowId]],
      ['list', ['list']],
    ];
    const rows: string[][] = [];
    for (const [name, args] of commands) {
      const compiled: number[] = [];
      const tsx: number[] = [];
      const before: number[] = [];
      for (let i = 0; i < runs; i++) {
        compiled.push(timeOnce(args, env));
        tsx.push(timeOnce(args, { ...env, LINKFLOW_TSX: '1' }));
        if (values.before) before.push(timeOnce(args, env, path.resolve(values.before)));
      }
      rows.push([
        `linkflow ${name}`,
        ...(values.before ? [`${s(median(before))} (${s(Math.min(...before))}–${s(Math.max(...before))})`] : []),
        `${s(median(tsx))} (${s(Math.min(...tsx))}–${s(Math.max(...tsx))})`,
        `${s(median(compiled))} (${s(Math.min(...compiled))}–${s(Math.max(...compiled))})`,
      ]);
      console.log(rows.at(-1)!.join('  '));
    }
    await client.connection.close();
    sampler.stop();
    const lines = [
      `Start to exit of each command, median (min–max) of ${runs} runs, the two paths interleaved.`,
      ...(values.before ? [`before: ${values.before}'s bin/linkflow.js (tsx, every command's modules loaded at start).`] : []),
      `tsx: LINKFLOW_TSX=1, the TypeScript sources compiled at each start (a development checkout whose dist/ is stale).`,
      `compiled: dist/ (npm run build), each command loading only the modules it uses.`,
      '',
      table(['command', ...(values.before ? ['before'] : []), 'tsx', 'compiled'], rows),
    ];
    if (values['write-results'])
      console.log(`wrote ${writeResults('RESULTS-cli.md', 'CLI start time', 'node --import tsx perf/cli-start.ts --write-results', lines, sampler)}`);
    else console.log(lines.join('\n'));
  } finally {
    worker.shutdown();
    await running.catch(() => undefined);
    await worker.close();
    await server.stop();
  }
}

await main();
