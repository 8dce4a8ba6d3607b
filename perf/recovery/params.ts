/** perf/recovery.ts's parameters: the command line, its defaults and the `--quick` sizes; and the run's log. */
import { parseArgs } from 'node:util';
import { durationToMs } from '../../common/duration.ts';

export const OPTIONS = {
  help: { type: 'boolean', default: false, describe: 'this list' },
  quick: { type: 'boolean', default: false, describe: 'smaller sizes: fewer faults, shorter goodput runs (about 3 min instead of about 7)' },
  'write-results': { type: 'boolean', default: false, describe: 'write perf/RESULTS.md from this run' },
  sections: { type: 'string', default: 'detect,recompute,goodput', describe: 'which sections to run (detect = sections 1 and 2)' },
  'iter-ms': { type: 'string', default: '20', describe: 'emulated iteration time of sections 1–3 (MLEMU_ITER_TIME_MS)' },
  samples: { type: 'string', default: '3', quick: '1', describe: 'faults per kind in sections 1–2' },
  'train-iters': { type: 'string', default: '100', describe: 'training iterations per pipeline in sections 1–2' },
  'save-interval': { type: 'string', default: '10', describe: 'save interval in sections 1–2' },
  'heartbeat-timeout': { type: 'string', default: '5s', describe: 'activity heartbeat timeout (the worker-loss window)' },
  backoff: { type: 'string', default: '500ms', describe: 'backoff between attempts (both budgets, coefficient 1)' },
  'hang-window': { type: 'string', default: '3s', describe: 'noProgressTimeout of the hang scenario' },
  'hccl-delay-ms': {
    type: 'string',
    default: '2000',
    describe: 'silence before an injected HCCL error (MLEMU_HCCL_DELAY_MS, stands in for HCCL_EXEC_TIMEOUT)',
  },
  intervals: { type: 'string', default: '5,10,20', describe: 'save intervals of section 3' },
  'faults-per-interval': { type: 'string', default: '10', quick: '4', describe: 'crash faults per save interval in section 3' },
  'recompute-iters': { type: 'string', default: '200', quick: '120', describe: 'training iterations per pipeline in section 3' },
  'goodput-iters': { type: 'string', default: '1500', quick: '500', describe: 'training iterations of each goodput run' },
  'goodput-iter-ms': { type: 'string', default: '30', quick: '30', describe: 'emulated iteration time of the goodput runs' },
  'save-ms': { type: 'string', default: '300', quick: '300', describe: 'emulated checkpoint save cost of the goodput runs (MLEMU_SAVE_TIME_MS)' },
  mtbf: { type: 'string', default: '8s', quick: '5s', describe: 'mean time between crash faults in the goodput runs' },
  'fixed-interval': { type: 'string', default: '25', quick: '20', describe: 'the fixed save interval of goodput run (b)' },
  seed: { type: 'string', default: '4', describe: 'seed of the fault schedules' },
  keep: { type: 'boolean', default: false, describe: 'keep the temporary workspaces' },
} as const;

export type OptionName = keyof typeof OPTIONS;

export function parseParams() {
  const { values } = parseArgs({
    options: Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, { type: o.type }])) as { [K in OptionName]: { type: (typeof OPTIONS)[K]['type'] } },
    strict: true,
  });
  const quick = values.quick === true;
  const str = (name: OptionName): string => {
    const given = values[name];
    if (typeof given === 'string') return given;
    const o = OPTIONS[name];
    return String(quick && 'quick' in o ? o.quick : o.default);
  };
  const num = (name: OptionName): number => {
    const n = Number(str(name));
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${str(name)}`);
    return n;
  };
  const int = (name: OptionName): number => {
    const n = num(name);
    if (!Number.isInteger(n)) throw new Error(`--${name} must be a whole number, got ${str(name)}`);
    return n;
  };
  return {
    help: values.help === true,
    quick,
    writeResults: values['write-results'] === true,
    keep: values.keep === true,
    sections: new Set(
      str('sections')
        .split(',')
        .map((s) => s.trim()),
    ),
    iterMs: int('iter-ms'),
    samples: int('samples'),
    trainIters: int('train-iters'),
    saveInterval: int('save-interval'),
    heartbeatTimeout: str('heartbeat-timeout'),
    heartbeatTimeoutMs: durationToMs(str('heartbeat-timeout')),
    backoff: str('backoff'),
    backoffMs: durationToMs(str('backoff')),
    hangWindow: str('hang-window'),
    hcclDelayMs: int('hccl-delay-ms'),
    intervals: str('intervals').split(',').map(Number),
    faultsPerInterval: int('faults-per-interval'),
    recomputeIters: int('recompute-iters'),
    goodputIters: int('goodput-iters'),
    goodputIterMs: int('goodput-iter-ms'),
    saveMs: int('save-ms'),
    mtbfMs: durationToMs(str('mtbf')),
    fixedInterval: int('fixed-interval'),
    seed: int('seed'),
    argv: process.argv.slice(2).join(' '),
  };
}

export type Params = ReturnType<typeof parseParams>;

/** `--help`: every parameter with its defaults. */
export function printHelp(): void {
  for (const [name, o] of Object.entries(OPTIONS))
    console.log(`  --${name.padEnd(20)} ${o.describe}${o.type === 'string' ? ` (default ${o.default}${'quick' in o ? `, --quick ${o.quick}` : ''})` : ''}`);
}

const t0 = Date.now();

/** Since the run started (this module's load). */
export function elapsedMs(): number {
  return Date.now() - t0;
}

/** A progress line on stderr, with the seconds since the start. */
export function log(msg: string): void {
  process.stderr.write(`[bench ${(elapsedMs() / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}
