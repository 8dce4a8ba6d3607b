/**
 * The benchmark suite: which cases a nightly run measures and how it judges them.
 *
 * A user writes a suite file (YAML or JSON); without one the suite is ModelLink's published
 * performance table (performance-table.json, a verbatim copy of the reference's seed-performance.json,
 * 45 rows). Everything here is plain data: the workflow turns each case into a short pretraining job.
 */
import { z } from 'zod';
import { FLAVOURS, type Flavour } from '../frameworks/index.ts';
import { durationSchema } from '../common/duration.ts';
import { formatPath } from '../common/issue-path.ts';
import { modellinkSchema, slurmSchema, type SpecProblem } from '../spec/spec.ts';
import { getPreset, presetNames, type Impl, type Preset, type TableRow, type TrainingReference } from '../frameworks/modellink/presets.ts';
import { envSchema, IMPLS, nonEmpty, nonNegativeInt, positiveInt, positiveNumber } from '../spec/schema-parts.ts';
import tableData from '../frameworks/modellink/performance-table.json' with { type: 'json' };

const nonNegativeNumber = z.number({ error: 'expected a non-negative number' }).min(0, 'expected a non-negative number');
const name = z.string({ error: 'expected a name' }).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'expected a name of letters, digits, "-", "_" or "."');
const caseId = z.string({ error: 'expected a case id' }).regex(/^[a-z0-9][a-z0-9_.-]*$/, 'expected a case id of lowercase letters, digits, "-", "_" or "."');

const PRECISIONS = ['bf16', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** A case the user adds to the table's rows. Unset fields come from the preset's published layout. */
const suiteCaseSchema = z.strictObject({
  /** Default: derived from preset, sequence length, impl, layout and precision, like the table's ids. */
  id: caseId.optional(),
  preset: nonEmpty,
  nodes: positiveInt.default(1),
  devicesPerNode: positiveInt.default(8),
  seqLength: positiveInt.optional(),
  impl: z.enum(IMPLS, { error: 'expected impl to be mcore or legacy' }).optional(),
  precision: z.enum(PRECISIONS, { error: 'expected precision to be bf16 or fp16' }).optional(),
  tp: positiveInt.optional(),
  pp: positiveInt.optional(),
  cp: positiveInt.optional(),
  ep: positiveInt.optional(),
  microBatchSize: positiveInt.optional(),
  globalBatchSize: positiveInt.optional(),
  /** tokens/s per device to compare with while there is too little history (a table row has its own). */
  baseline: positiveNumber.optional(),
  env: envSchema.default({}),
  /**
   * The framework version this case runs, when it differs from the suite's `modellink` (e.g. MindSpeed-LLM
   * 2.3.0 and 26.0.0 side by side on the same model): flavour, version and the checkout holding it.
   */
  framework: z.strictObject({ flavour: z.enum(FLAVOURS), version: nonEmpty, root: nonEmpty.optional() }).optional(),
});

const iterationsSchema = z.strictObject({
  /** Iterations run before measuring: start-up, graph compilation and the first allocations are not steady state. */
  warmup: nonNegativeInt.default(5),
  measured: positiveInt.default(20),
});

const thresholdsSchema = z.strictObject({
  /** A regression is more than this many percent below the history median (or the baseline, with too little history). */
  regressionPercent: positiveNumber.default(5),
  improvementPercent: positiveNumber.default(5),
  /** How many previous nights of the same case on the same cluster make its history. */
  historyNights: positiveInt.default(7),
  /** With fewer measured nights than this, a case is compared with its baseline instead of its history. */
  minHistoryNights: positiveInt.default(3),
  /** The noise band is the history median ± this many median absolute deviations. */
  noiseBandMads: nonNegativeNumber.default(3),
});

export const suiteSchema = z.strictObject({
  name,
  /** Which rows of the performance table to run: all of them, or a list of case ids. */
  rows: z.union([z.literal('all'), z.array(caseId)], { error: 'expected "all" or a list of case ids' }).default('all'),
  cases: z.array(suiteCaseSchema).default([]),
  iterations: iterationsSchema.default(iterationsSchema.parse({})),
  thresholds: thresholdsSchema.default(thresholdsSchema.parse({})),
  /** Receives the JSON summary when a run has regressions or failures. */
  webhook: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).optional(),
  /** The worker pool that runs the cases. */
  taskQueue: nonEmpty.optional(),
  /** The name history is kept under ("the same cluster"); default: the task queue, else "default". */
  cluster: name.optional(),
  /** ModelLink on the nodes, as in a pipeline spec (root, python, launcher, setupScript, env). */
  modellink: modellinkSchema.optional(),
  /** Logs of every case and the results database (benchmarks.sqlite); relative to the suite file. */
  workspace: nonEmpty.default('.linkflow/bench'),
  /** Tokenizers per preset (a HF directory or tokenizer.model); a preset without one runs with Megatron's NullTokenizer and the preset's vocabulary size. */
  tokenizers: z.record(nonEmpty, nonEmpty).default({}),
  /** Run every case as a Slurm job with these settings (as a pipeline's cluster.slurm; a partition is needed) instead of on the pool's node workers. */
  slurm: slurmSchema.optional(),
  /** NPUs per node of the pool: a case needing more than the pool's nodes × this is skipped. */
  devicesPerNode: positiveInt.default(8),
  /** A case still running after this long (stuck waiting for nodes, a hang) is recorded failed and the night goes on. */
  caseTimeout: durationSchema.default('2h'),
});

export type BenchmarkSuite = z.infer<typeof suiteSchema>;
export type SuiteCase = z.infer<typeof suiteCaseSchema>;
export type Thresholds = z.infer<typeof thresholdsSchema>;
export type Iterations = z.infer<typeof iterationsSchema>;

export type SuiteResult = { ok: true; suite: BenchmarkSuite; warnings: SpecProblem[] } | { ok: false; problems: SpecProblem[] };

const tableRowSchema = z.strictObject({
  model: z.string(),
  size: z.string(),
  seq_length: positiveInt,
  impl: z.enum(IMPLS),
  nodes: positiveInt,
  devices_per_node: positiveInt,
  precision: z.enum(PRECISIONS),
  tokens_per_s_per_device: positiveNumber,
  reference_tokens_per_s_per_device: positiveNumber.nullable(),
  contributor: z.string(),
  certification: z.string(),
});

const TABLE: readonly TableRow[] = z
  .strictObject({ source: z.string(), rows: z.array(tableRowSchema) })
  .parse(tableData)
  .rows.map((r) => ({
    model: r.model,
    size: r.size,
    seqLength: r.seq_length,
    impl: r.impl,
    nodes: r.nodes,
    devicesPerNode: r.devices_per_node,
    precision: r.precision,
    tokensPerSecondPerDevice: r.tokens_per_s_per_device,
    referenceTokensPerSecondPerDevice: r.reference_tokens_per_s_per_device,
  }));

export function performanceTable(): readonly TableRow[] {
  return TABLE;
}

/** What is fixed by the table row (or the suite case): the job's shape. */
export interface CaseShape {
  impl: Impl;
  precision: Precision;
  seqLength: number;
  nodes: number;
  devicesPerNode: number;
}

/** How the job is split and batched; known only once a preset gives a published layout. */
export interface CaseParallel {
  tp: number;
  pp: number;
  cp: number;
  ep: number;
  vpp?: number;
  numLayerList?: number[];
  microBatchSize: number;
  globalBatchSize: number;
}

export interface BenchmarkCase {
  /** Stable across nights: history is kept under it. */
  id: string;
  /** For people: "LLaMA2 7B, seq 4096, mcore, 1×8, bf16". */
  title: string;
  origin: 'table' | 'suite';
  preset?: string;
  shape: CaseShape;
  parallel?: CaseParallel;
  /** The ModelLink example script the parallel layout was taken from. */
  script?: string;
  /** Where the layout differs from what the table published (the table's layout is kept). */
  layoutNote?: string;
  /** tokens/s per device the case is compared with while its history is short. */
  baseline?: number;
  env: Record<string, string>;
  /** Set when the case cannot run on any cluster (preset missing, no layout): reported as skipped. */
  skipReason?: string;
  /** The framework version (and its checkout) the case runs instead of the suite's. */
  framework?: { flavour: Flavour; version: string; root?: string };
}

/** ModelLink's preset id rule applied to the table's words: lowercase, "." dropped in names, "point" in sizes. */
function slug(model: string, size: string): string {
  return `${model.toLowerCase().replace(/\./g, '')}-${size.toLowerCase().replace(/\./g, 'point')}`;
}

function seqToken(seqLength: number): string {
  return seqLength % 1024 === 0 ? `seq${seqLength / 1024}k` : `seq${seqLength}`;
}

function layoutId(base: string, shape: CaseShape): string {
  return `${base}-${seqToken(shape.seqLength)}-${shape.impl}-${shape.nodes}x${shape.devicesPerNode}-${shape.precision}`;
}

/** e.g. "aquila-7b-seq2k-legacy-1x8-bf16"; from the table's words, so it does not change when presets do. */
export function tableCaseId(row: TableRow): string {
  return layoutId(slug(row.model, row.size), row);
}

function titleOf(what: string, shape: CaseShape): string {
  return `${what}, seq ${shape.seqLength}, ${shape.impl}, ${shape.nodes}×${shape.devicesPerNode}, ${shape.precision}`;
}

function sameRow(a: TableRow, b: TableRow): boolean {
  return (
    a.model === b.model &&
    a.size === b.size &&
    a.seqLength === b.seqLength &&
    a.impl === b.impl &&
    a.nodes === b.nodes &&
    a.devicesPerNode === b.devicesPerNode &&
    a.precision === b.precision
  );
}

/** The preset whose `table` lists the row (the preset generator maps every published row to exactly one). */
function presetForTableRow(row: TableRow): Preset | undefined {
  for (const n of presetNames()) {
    const p = getPreset(n);
    if (p?.table.some((t) => sameRow(t, row))) return p;
  }
  return undefined;
}

/**
 * The published layout for a shape: a pretrain script of the same implementation and sequence length,
 * preferring one on the same nodes × devices; else the preset's reference layout. The shape itself is never
 * changed, so a case runs on the devices its baseline was measured on.
 */
function layoutFor(preset: Preset, shape: CaseShape): { parallel: CaseParallel; script?: string; note?: string } | undefined {
  const pretrain = preset.references.filter((r) => r.kind === 'pretrain' && r.impl === shape.impl && r.seqLength === shape.seqLength);
  const exact = pretrain.find((r) => r.nodes === shape.nodes && r.devicesPerNode === shape.devicesPerNode);
  const fromScript = (r: TrainingReference): CaseParallel => ({
    tp: r.tp,
    pp: r.pp,
    cp: r.cp ?? 1,
    ep: r.ep ?? 1,
    ...(r.vpp !== undefined ? { vpp: r.vpp } : {}),
    ...(r.numLayerList !== undefined ? { numLayerList: r.numLayerList } : {}),
    microBatchSize: r.microBatchSize,
    globalBatchSize: r.globalBatchSize,
  });
  if (exact) return { parallel: fromScript(exact), script: exact.script };
  const other = pretrain[0];
  if (other) {
    return {
      parallel: fromScript(other),
      script: other.script,
      note: `${other.script} runs on ${other.nodes}×${other.devicesPerNode} devices; the case keeps ${shape.nodes}×${shape.devicesPerNode} with the script's parallel layout`,
    };
  }
  const ref = preset.reference;
  if ((ref.impl ?? 'mcore') !== shape.impl) return undefined;
  return {
    parallel: { tp: ref.tp, pp: ref.pp, cp: 1, ep: 1, microBatchSize: ref.microBatchSize, globalBatchSize: ref.globalBatchSize },
    ...(ref.script !== undefined ? { script: ref.script } : {}),
    note: `no ${shape.impl} pretrain script of ${preset.name} at sequence length ${shape.seqLength}; the parallel layout of its reference script is used`,
  };
}

/**
 * The divisibility rules Megatron checks at start-up (frameworks/modellink/rules.ts checks them on a whole spec), for a
 * layout that was moved to the table's device count: such a case cannot run as published and is skipped.
 */
function layoutProblem(shape: CaseShape, p: CaseParallel): string | undefined {
  const world = shape.nodes * shape.devicesPerNode;
  const split = p.tp * p.pp * p.cp;
  if (world % split !== 0) return `${world} devices are not divisible by tp × pp × cp = ${split}`;
  const dp = world / split;
  // Expert groups span the data- and context-parallel ranks (frameworks/modellink/rules.ts checkExpertParallel).
  if (p.ep > 1 && (dp * p.cp) % p.ep !== 0)
    return `expert parallel size ${p.ep} does not divide the data-parallel size ${dp}${p.cp > 1 ? ` × context-parallel size ${p.cp}` : ''} on ${shape.nodes}×${shape.devicesPerNode} devices`;
  if (p.globalBatchSize % (p.microBatchSize * dp) !== 0)
    return `global batch size ${p.globalBatchSize} is not divisible by micro batch size ${p.microBatchSize} × data-parallel size ${dp}`;
  return undefined;
}

function noLayout(preset: Preset, shape: CaseShape): string {
  return preset.impls.includes(shape.impl)
    ? `no layout: preset ${preset.name} publishes no ${shape.impl} pretrain layout`
    : `no layout: preset ${preset.name} has no ${shape.impl} implementation (it has ${preset.impls.join(', ')})`;
}

export function caseFromTableRow(row: TableRow, findPreset: (row: TableRow) => Preset | undefined = presetForTableRow): BenchmarkCase {
  const shape: CaseShape = { impl: row.impl, precision: row.precision, seqLength: row.seqLength, nodes: row.nodes, devicesPerNode: row.devicesPerNode };
  const base = {
    id: tableCaseId(row),
    title: titleOf(`${row.model} ${row.size}`, shape),
    origin: 'table' as const,
    shape,
    baseline: row.tokensPerSecondPerDevice,
    env: {},
  };
  const preset = findPreset(row);
  if (!preset) return { ...base, skipReason: 'preset missing' };
  const layout = layoutFor(preset, shape);
  if (!layout) return { ...base, preset: preset.name, skipReason: noLayout(preset, shape) };
  return withLayout({ ...base, preset: preset.name }, layout.parallel, layout.script, layout.note);
}

function withLayout(c: BenchmarkCase, parallel: CaseParallel, script: string | undefined, note: string | undefined): BenchmarkCase {
  const problem = layoutProblem(c.shape, parallel);
  return {
    ...c,
    parallel,
    ...(script !== undefined ? { script } : {}),
    ...(note !== undefined ? { layoutNote: note } : {}),
    ...(problem !== undefined ? { skipReason: `layout: ${problem}${note ? ` (${note})` : ''}` } : {}),
  };
}

/** The 45 cases of the default suite, in the table's order. */
export function tableCases(): BenchmarkCase[] {
  return TABLE.map((row) => caseFromTableRow(row));
}

/** The id a suite case gets when it does not name one. */
function suiteCaseId(c: SuiteCase): string {
  const preset = getPreset(c.preset);
  const shape = suiteCaseShape(c, preset);
  const parallel = [
    c.tp !== undefined ? `tp${c.tp}` : '',
    c.pp !== undefined ? `pp${c.pp}` : '',
    c.cp !== undefined ? `cp${c.cp}` : '',
    c.ep !== undefined ? `ep${c.ep}` : '',
    c.globalBatchSize !== undefined ? `gbs${c.globalBatchSize}` : '',
    // A version of its own keeps its own history.
    c.framework ? `${c.framework.flavour === 'modellink' ? 'ml' : 'msl'}${c.framework.version}` : '',
  ].filter(Boolean);
  return [layoutId(c.preset.toLowerCase().replace(/[^a-z0-9_.-]/g, '-'), shape), ...parallel].join('-');
}

function suiteCaseShape(c: SuiteCase, preset: Preset | undefined): CaseShape {
  return {
    impl: c.impl ?? preset?.reference.impl ?? 'mcore',
    precision: c.precision ?? preset?.reference.precision ?? 'bf16',
    seqLength: c.seqLength ?? preset?.architecture.seqLength ?? 4096,
    nodes: c.nodes,
    devicesPerNode: c.devicesPerNode,
  };
}

export function caseFromSuiteCase(c: SuiteCase): BenchmarkCase {
  const preset = getPreset(c.preset);
  const shape = suiteCaseShape(c, preset);
  const base = {
    id: c.id ?? suiteCaseId(c),
    title: titleOf(c.preset, shape),
    origin: 'suite' as const,
    shape,
    ...(c.baseline !== undefined ? { baseline: c.baseline } : {}),
    env: c.env,
    ...(c.framework ? { framework: c.framework } : {}),
  };
  if (!preset) return { ...base, skipReason: `preset missing: no preset named "${c.preset}"` };
  const layout = layoutFor(preset, shape);
  const overrides = { tp: c.tp, pp: c.pp, cp: c.cp, ep: c.ep, microBatchSize: c.microBatchSize, globalBatchSize: c.globalBatchSize };
  const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) as Partial<CaseParallel>;
  if (!layout) {
    // The user may give the whole layout themselves.
    if (c.tp === undefined || c.pp === undefined || c.globalBatchSize === undefined)
      return { ...base, preset: preset.name, skipReason: `${noLayout(preset, shape)}; give tp, pp and globalBatchSize in the case` };
    return withLayout({ ...base, preset: preset.name }, { cp: 1, ep: 1, microBatchSize: 1, ...given } as CaseParallel, undefined, undefined);
  }
  const parallel: CaseParallel = { ...layout.parallel, ...given };
  if (c.pp !== undefined && c.pp !== layout.parallel.pp) {
    // The script's split of layers over pipeline stages was made for its own pp.
    delete parallel.numLayerList;
    delete parallel.vpp;
  }
  return withLayout({ ...base, preset: preset.name }, parallel, layout.script, layout.note);
}

/** The cases a run of the suite measures, in order: the chosen table rows (all in the table's order, or as listed), then the suite's own. */
export function planSuite(suite: BenchmarkSuite): BenchmarkCase[] {
  const table = tableCases();
  const rows = suite.rows === 'all' ? table : suite.rows.map((id) => table.find((c) => c.id === id)).filter((c): c is BenchmarkCase => c !== undefined);
  return [...rows, ...suite.cases.map(caseFromSuiteCase)];
}

/** The name history is kept under. */
export function suiteCluster(suite: BenchmarkSuite): string {
  return suite.cluster ?? suite.taskQueue ?? 'default';
}

/** The suite without a file: every table row, default iterations and thresholds. */
export function defaultSuite(): BenchmarkSuite {
  return suiteSchema.parse({ name: 'modellink-table' });
}

/** Validates what a user wrote; every problem comes back with its path, as the pipeline spec's do. */
export function parseSuite(raw: unknown): SuiteResult {
  const parsed = suiteSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, problems: parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
  const suite = parsed.data;
  const problems: SpecProblem[] = [];
  const warnings: SpecProblem[] = [];
  const tableIds = new Set(tableCases().map((c) => c.id));
  /** Case id → what already uses it. */
  const ids = new Map<string, string>();
  if (suite.rows === 'all') {
    for (const id of tableIds) ids.set(id, 'a table row');
  } else {
    suite.rows.forEach((id, i) => {
      if (!tableIds.has(id)) problems.push({ path: `rows[${i}]`, message: `no table case "${id}"${nearest(id, tableIds)}` });
      else if (ids.has(id)) problems.push({ path: `rows[${i}]`, message: `"${id}" is already ${ids.get(id)}` });
      else ids.set(id, `rows[${i}]`);
    });
  }
  suite.cases.forEach((c, i) => {
    const id = c.id ?? suiteCaseId(c);
    const taken = ids.get(id);
    if (taken) problems.push({ path: `cases[${i}]${c.id ? '.id' : ''}`, message: `case id "${id}" is already used by ${taken}; give this case its own id` });
    else ids.set(id, `cases[${i}]`);
    if (!getPreset(c.preset))
      warnings.push({
        path: `cases[${i}].preset`,
        message: `no preset named "${c.preset}"${nearest(c.preset, new Set(presetNames()))}; the case will be skipped (preset missing)`,
      });
  });
  if (suite.rows !== 'all' && suite.rows.length === 0 && suite.cases.length === 0)
    problems.push({ path: 'rows', message: 'the suite runs no case: list table rows or add cases' });
  if (suite.thresholds.minHistoryNights > suite.thresholds.historyNights) {
    problems.push({
      path: 'thresholds.minHistoryNights',
      message: `must not exceed historyNights (${suite.thresholds.historyNights}): the history could never be long enough`,
    });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, suite, warnings };
}

/** A hint for a mistyped id: the known id sharing the longest prefix with it. */
function nearest(wrong: string, known: ReadonlySet<string>): string {
  let best = '';
  let bestLength = 0;
  for (const k of known) {
    let n = 0;
    while (n < k.length && n < wrong.length && k[n] === wrong[n]) n++;
    if (n > bestLength) [best, bestLength] = [k, n];
  }
  return bestLength >= 3 ? ` (did you mean "${best}"?)` : '';
}
