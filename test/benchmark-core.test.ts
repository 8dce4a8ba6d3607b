/** Nightly benchmarks, the pure core: suite files, the default suite from the table, throughput, verdicts. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  capacitySkipReason,
  caseFromSuiteCase,
  caseFromTableRow,
  decideVerdict,
  defaultSuite,
  fingerprintChanges,
  judgeCase,
  measureThroughput,
  msPerIterationAt,
  parseSuite,
  performanceTable,
  planSuite,
  suiteCluster,
  suiteSchema,
  tableCaseId,
  tableCases,
  type BenchmarkCase,
  type Thresholds,
} from '../benchmark/core.ts';
import { getPreset } from '../frameworks/modellink/presets.ts';
import { parseLogLine } from '../frameworks/modellink/training-log.ts';
import { loadSuiteFile, parseSuiteText } from '../benchmark/suite-file.ts';
import { planBenchmarkCase } from '../benchmark/plan.ts';
import { ROOT } from '../testkit/specs.ts';

const REFERENCE = path.join(ROOT, 'reference', 'modellink', 'seed-performance.json');
const THRESHOLDS: Thresholds = defaultSuite().thresholds;

function problemsOf(raw: unknown): { path: string; message: string }[] {
  const r = parseSuite(raw);
  if (r.ok) throw new Error('expected the suite to be rejected');
  return r.problems;
}

describe('suite file', () => {
  it('fills the defaults: every table row, 5 warm-up and 20 measured iterations, 5 % thresholds, 7 nights, k = 3', () => {
    const r = parseSuite({ name: 'nightly' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.suite.rows).toBe('all');
    expect(r.suite.iterations).toEqual({ warmup: 5, measured: 20 });
    expect(r.suite.thresholds).toEqual({ regressionPercent: 5, improvementPercent: 5, historyNights: 7, minHistoryNights: 3, noiseBandMads: 3 });
    expect(planSuite(r.suite)).toHaveLength(45);
  });

  it('reports every problem with its path', () => {
    const problems = problemsOf({
      name: 'bad name!',
      rows: ['aquila-7b-seq2k-legacy-1x8-bf16'],
      cases: [
        { preset: 'llama2-7b', nodes: 0, impl: 'megatron' },
        { preset: 'llama2-7b', colour: 'red' },
      ],
      iterations: { warmup: -1 },
      thresholds: { regressionPercent: 'five' },
      webhook: 'ftp://example.com/hook',
    });
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining(['name', 'cases[0].nodes', 'cases[0].impl', 'cases[1]', 'iterations.warmup', 'thresholds.regressionPercent', 'webhook']),
    );
    expect(problems.find((p) => p.path === 'cases[0].nodes')?.message).toBe('expected a positive integer');
    expect(problems.find((p) => p.path === 'cases[1]')?.message).toMatch(/colour/);
  });

  it('checks row ids against the table, with a hint, and case ids for collisions', () => {
    const problems = problemsOf({
      name: 'n',
      rows: ['aquila-7b-seq2k-legacy-1x8-bf1', 'llama2-7b-seq4k-mcore-1x8-bf16', 'llama2-7b-seq4k-mcore-1x8-bf16'],
      cases: [
        { id: 'llama2-7b-seq4k-mcore-1x8-bf16', preset: 'llama2-7b' },
        { preset: 'llama2-7b', tp: 2 },
        { preset: 'llama2-7b', tp: 2 },
      ],
      thresholds: { historyNights: 2, minHistoryNights: 3 },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'rows[0]', message: 'no table case "aquila-7b-seq2k-legacy-1x8-bf1" (did you mean "aquila-7b-seq2k-legacy-1x8-bf16"?)' },
        { path: 'rows[2]', message: '"llama2-7b-seq4k-mcore-1x8-bf16" is already rows[1]' },
        { path: 'cases[0].id', message: 'case id "llama2-7b-seq4k-mcore-1x8-bf16" is already used by rows[1]; give this case its own id' },
        { path: 'cases[2]', message: expect.stringMatching(/is already used by cases\[1\]/) },
        { path: 'thresholds.minHistoryNights', message: expect.stringMatching(/must not exceed historyNights \(2\)/) },
      ]),
    );
  });

  it('rejects a suite that runs nothing', () => {
    expect(problemsOf({ name: 'n', rows: [] })).toEqual([{ path: 'rows', message: 'the suite runs no case: list table rows or add cases' }]);
  });

  it('warns about an unknown preset, and the case is skipped as "preset missing"', () => {
    const r = parseSuite({ name: 'n', rows: [], cases: [{ preset: 'llama2-7bb' }] });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.warnings).toEqual([
      {
        path: 'cases[0].preset',
        message: expect.stringMatching(/no preset named "llama2-7bb" \(did you mean "llama2-7b"\?\); the case will be skipped \(preset missing\)/),
      },
    ]);
    const [c] = planSuite(r.suite);
    expect(c.skipReason).toMatch(/^preset missing/);
    expect(capacitySkipReason(c, { nodes: 64, devicesPerNode: 8 })).toMatch(/^preset missing/);
  });

  it('the example suite is valid', () => {
    const r = loadSuiteFile(path.join(ROOT, 'examples', 'benchmark-suite.yaml'));
    expect(r.ok ? r.warnings : r.problems).toEqual([]);
    if (!r.ok) return;
    expect(planSuite(r.suite).map((c) => [c.id, c.skipReason])).toEqual([
      ['llama2-7b-seq4k-mcore-1x8-bf16', undefined],
      ['qwen15-7b-seq8k-legacy-1x8-bf16', undefined],
      ['chatglm3-6b-seq32k-mcore-1x8-fp16', undefined],
      ['llama2-7b-seq4k-mcore-1x8-bf16-tp2', undefined],
    ]);
    expect(suiteCluster(r.suite)).toBe('a2-pool');
    expect(loadSuiteFile().ok && loadSuiteFile()).toMatchObject({ suite: { name: 'modellink-table', rows: 'all' } });
  });

  it('reads YAML and names the line of a syntax error', () => {
    const ok = parseSuiteText(
      'name: nightly\nrows: [llama2-7b-seq4k-mcore-1x8-bf16]\niterations: { warmup: 2, measured: 10 }\nwebhook: http://127.0.0.1:9/hook\n',
      'suite.yaml',
    );
    expect(ok.ok && ok.suite.iterations).toEqual({ warmup: 2, measured: 10 });
    const bad = parseSuiteText('name: nightly\nrows: [a, b\n', 'suite.yaml');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.problems[0].path).toMatch(/^suite\.yaml:\d+$/);
    const json = parseSuiteText('{"name": "n", "iterations": {"measured": 0}}', 'suite.json');
    expect(!json.ok && json.problems).toEqual([{ path: 'iterations.measured', message: 'expected a positive integer' }]);
  });

  it('cases can name the framework version, so two versions run the same model side by side with their own histories', () => {
    const suite = suiteSchema.parse({
      name: 'versions',
      rows: [],
      modellink: { root: '/opt/MindSpeed-LLM-2.3.0', flavour: 'mindspeed-llm', version: '2.3.0' },
      cases: [
        { preset: 'llama2-7b', framework: { flavour: 'mindspeed-llm', version: '2.3.0' } },
        { preset: 'llama2-7b', framework: { flavour: 'mindspeed-llm', version: '26.0.0', root: '/opt/MindSpeed-LLM-26.0.0' } },
      ],
    });
    const [a, b] = suite.cases.map(caseFromSuiteCase);
    expect([a.id, b.id]).toEqual(['llama2-7b-seq4k-mcore-1x8-bf16-msl2.3.0', 'llama2-7b-seq4k-mcore-1x8-bf16-msl26.0.0']);
    const [pa, pb] = [a, b].map((c) => planBenchmarkCase(suite, c, { runDir: '/tmp/bench/run' }));
    if (!pa.ok || !pb.ok) throw new Error('not planned');
    expect([pa.plan.framework, pb.plan.framework]).toEqual([
      { flavour: 'mindspeed-llm', version: '2.3.0' },
      { flavour: 'mindspeed-llm', version: '26.0.0' },
    ]);
    expect([pa.plan.stages[0].cwd, pb.plan.stages[0].cwd]).toEqual(['/opt/MindSpeed-LLM-2.3.0', '/opt/MindSpeed-LLM-26.0.0']);
    expect(pb.plan.stages[0].args).toContainEqual(['--ckpt-format', 'torch']);
  });

  it('an added case takes the preset’s published layout and the overrides given', () => {
    const c = caseFromSuiteCase(suiteSchema.parse({ name: 'n', cases: [{ preset: 'llama2-7b', tp: 2, env: { HCCL_BUFFSIZE: '120' } }] }).cases[0]);
    expect(c).toMatchObject({
      id: 'llama2-7b-seq4k-mcore-1x8-bf16-tp2',
      preset: 'llama2-7b',
      origin: 'suite',
      shape: { impl: 'mcore', precision: 'bf16', seqLength: 4096, nodes: 1, devicesPerNode: 8 },
      parallel: { tp: 2, pp: 2, cp: 1, ep: 1, microBatchSize: 1, globalBatchSize: 256 },
      env: { HCCL_BUFFSIZE: '120' },
    });
    expect(c.skipReason).toBeUndefined();
    expect(c.baseline).toBeUndefined();
  });
});

describe('default suite: the performance table', () => {
  const cases = tableCases();

  it('is a verbatim copy of the reference table', () => {
    const copy = JSON.parse(fs.readFileSync(path.join(ROOT, 'frameworks', 'modellink', 'performance-table.json'), 'utf8')) as unknown;
    expect(copy).toEqual(JSON.parse(fs.readFileSync(REFERENCE, 'utf8')));
  });

  it('has 45 cases with unique, stable ids', () => {
    expect(cases).toHaveLength(45);
    expect(new Set(cases.map((c) => c.id)).size).toBe(45);
    for (const c of cases) expect(c.id).toMatch(/^[a-z0-9][a-z0-9.-]*-seq\d+k-(mcore|legacy)-\d+x\d+-(bf16|fp16)$/);
    // Pinned: history is kept under these ids, so a change of the rule must show up here.
    expect(cases.slice(0, 3).map((c) => c.id)).toEqual([
      'aquila-7b-seq2k-legacy-1x8-bf16',
      'aquila2-7b-seq2k-legacy-1x8-fp16',
      'aquila2-34b-seq4k-legacy-2x8-bf16',
    ]);
    expect(cases.filter((c) => c.preset === 'chatglm3-6b').map((c) => c.id)).toEqual([
      'chatglm3-6b-seq8k-mcore-1x8-fp16',
      'chatglm3-6b-seq32k-mcore-1x8-fp16',
      'chatglm3-6b-seq64k-mcore-2x8-fp16',
    ]);
  });

  it('maps every row to the preset whose table lists it, with the row’s baseline and shape', () => {
    const table = performanceTable();
    cases.forEach((c, i) => {
      const row = table[i];
      expect(c.baseline).toBe(row.tokensPerSecondPerDevice);
      expect(c.shape).toEqual({ impl: row.impl, precision: row.precision, seqLength: row.seqLength, nodes: row.nodes, devicesPerNode: row.devicesPerNode });
      const preset = getPreset(c.preset ?? '');
      expect(preset, c.id).toBeDefined();
      expect(preset!.table.some((t) => t.model === row.model && t.size === row.size && t.seqLength === row.seqLength && t.nodes === row.nodes)).toBe(true);
    });
    expect(new Set(cases.map((c) => c.preset)).size).toBe(42);
  });

  it('takes the layout from the script of the same sequence length and devices', () => {
    const byId = new Map(cases.map((c) => [c.id, c]));
    expect(byId.get('aquila-7b-seq2k-legacy-1x8-bf16')).toMatchObject({
      preset: 'aquila-7b',
      parallel: { tp: 8, pp: 1, microBatchSize: 8, globalBatchSize: 64 },
      script: 'examples/aquila/pretrain_aquila_7b_ptd.sh',
    });
    expect(byId.get('chatglm3-6b-seq32k-mcore-1x8-fp16')?.parallel).toMatchObject({ tp: 1, pp: 1, cp: 8, globalBatchSize: 32 });
    expect(byId.get('llama31-8b-seq128k-mcore-4x8-bf16')?.parallel).toMatchObject({ tp: 8, cp: 4, globalBatchSize: 32 });
    // The table's devices are kept where the script runs on others, and said so.
    expect(byId.get('qwen-72b-seq8k-legacy-16x8-bf16')).toMatchObject({
      shape: { nodes: 16 },
      parallel: { tp: 8, pp: 8 },
      layoutNote: expect.stringMatching(/8×8/),
    });
  });

  it('skips only the rows that cannot run as published, with the reason', () => {
    const skipped = cases.filter((c) => c.skipReason !== undefined);
    expect(skipped.map((c) => c.id)).toEqual(['grok1-8x5b-seq8k-mcore-2x8-bf16']);
    expect(skipped[0].skipReason).toMatch(/^layout: expert parallel size 2 does not divide the data-parallel size 1/);
  });

  it('a row without a preset is a case skipped with "preset missing"', () => {
    const row = performanceTable()[0];
    const c = caseFromTableRow({ ...row, model: 'Nemotron', size: '4B' }, () => undefined);
    expect(c).toMatchObject({ id: 'nemotron-4b-seq2k-legacy-1x8-bf16', skipReason: 'preset missing', baseline: row.tokensPerSecondPerDevice });
    expect(c.parallel).toBeUndefined();
    expect(tableCaseId({ ...row, model: 'Qwen1.5', size: '0.5B', seqLength: 8192 })).toBe('qwen15-0point5b-seq8k-legacy-1x8-bf16');
  });

  it('a case needing more nodes or devices than the pool has is skipped', () => {
    const big = cases.find((c) => c.id === 'llama2-70b-seq4k-legacy-4x8-bf16')!;
    expect(capacitySkipReason(big, { nodes: 2, devicesPerNode: 8 })).toBe('needs 4 nodes; the pool has 2 free');
    expect(capacitySkipReason(big, { nodes: 4, devicesPerNode: 1 })).toBe("needs 8 devices per node; the pool's nodes have 1");
    expect(capacitySkipReason(big, { nodes: 4, devicesPerNode: 8 })).toBeUndefined();
  });
});

describe('throughput from measured iterations', () => {
  const shape = { seqLength: 4096, globalBatchSize: 128, worldSize: 8 };

  it('computes tokens/s/device = seq × global batch ÷ (s per iteration × devices), median and spread, after warm-up', () => {
    // Iterations 1–2 are warm-up. Measured: 5000, 4000, 8000, 6400 ms → 65536 tokens/s ÷ s:
    // 13107.2, 16384, 8192, 10240 → median (10240 + 13107.2) / 2 = 11673.6;
    // deviations 1433.6, 4710.4, 3481.6, 1433.6 → MAD (1433.6 + 3481.6) / 2 = 2457.6.
    const ms = [30000, 9000, 5000, 4000, 8000, 6400];
    const tflops = [10, 50, 110, 130, 140, 90];
    const samples = ms.map((m, i) => ({ iteration: i + 1, elapsedMsPerIteration: m, tflopsPerDevice: tflops[i] }));
    const r = measureThroughput(samples, shape, { warmup: 2 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.throughput.tokensPerSecondPerDevice).toBeCloseTo(11673.6, 6);
    expect(r.throughput.min).toBeCloseTo(8192, 6);
    expect(r.throughput.max).toBeCloseTo(16384, 6);
    expect(r.throughput.mad).toBeCloseTo(2457.6, 6);
    expect(r.throughput.iterations).toBe(4);
    expect(r.throughput.msPerIteration).toBeCloseTo(5700, 6);
    expect(r.throughput.tflopsPerDevice).toBeCloseTo(120, 6);
  });

  it('reads Megatron log lines with a log interval: a line stands for the iterations it averages', () => {
    const line = (it: number, ms: number, gbs = 128) =>
      ` [2024-09-29 10:00:00] iteration ${String(it).padStart(8)}/      25 | consumed samples: ${it * gbs} | elapsed time per iteration (ms): ${ms.toFixed(1)} | learning rate: 1.250000E-06 | global batch size: ${String(gbs).padStart(5)} | lm loss: 1.875432E+00 | loss scale: 1.0 | number of skipped iterations:   0 | number of nan iterations:   0 |`;
    const events = [line(5, 99999), line(10, 4000), line(15, 5000, 64), line(20, 4000), line(25, 4000)]
      .map((l) => parseLogLine(l))
      .filter((e) => e?.type === 'iteration');
    const r = measureThroughput(events, shape, { warmup: 5 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    // 4 lines × 5 iterations; the ramp-up line has half the batch: 4096 × 64 ÷ (5 s × 8) = 6553.6; the others 16384.
    expect(r.throughput.iterations).toBe(20);
    expect(r.throughput.tokensPerSecondPerDevice).toBeCloseTo(16384, 6);
    expect(r.throughput.min).toBeCloseTo(6553.6, 6);
  });

  it('says so when no iteration was measured', () => {
    const r = measureThroughput(
      [
        { iteration: 1, elapsedMsPerIteration: 100 },
        { iteration: 2, elapsedMsPerIteration: 100 },
      ],
      shape,
      { warmup: 5 },
    );
    expect(r).toEqual({ ok: false, reason: 'no measured iteration: the log reached iteration 2, warm-up ends at 5' });
  });

  it('a resumed job measures from where it loaded', () => {
    const r = measureThroughput(
      [
        { iteration: 101, elapsedMsPerIteration: 50000 },
        { iteration: 102, elapsedMsPerIteration: 5000 },
      ],
      shape,
      { warmup: 1, startIteration: 100 },
    );
    expect(r.ok && r.throughput.tokensPerSecondPerDevice).toBeCloseTo(13107.2, 6);
  });

  it('time per iteration at a given throughput is the inverse', () => {
    expect(msPerIterationAt(shape, 13107.2)).toBeCloseTo(5000, 6);
  });
});

describe('verdict', () => {
  it('three nights at ~X, then a fourth 15 % slower: regression against history', () => {
    const v = decideVerdict(850, 1000, [1000, 1010, 990], THRESHOLDS);
    expect(v.verdict).toBe('regression');
    expect(v.comparison).toMatchObject({ comparedWith: 'history', historyNights: 3, historyMedian: 1000, historyMad: 10, noiseLow: 970, noiseHigh: 1030 });
    expect(v.comparison.changeVsHistoryPercent).toBeCloseTo(-15, 9);
    expect(v.comparison.changeVsBaselinePercent).toBeCloseTo(-15, 9);
    expect(v.reason).toMatch(/-15\.0 % vs the median 1000 of 3 nights/);
  });

  it('noise within the band is ok even when more than 5 % below the median', () => {
    // Median 1000, MAD 50: the band is 850–1150, so 940 (−6 %) is noise for this case.
    const v = decideVerdict(940, 1000, [1000, 1100, 900, 1050, 950], THRESHOLDS);
    expect(v.verdict).toBe('ok');
    expect(v.comparison.noiseLow).toBe(850);
    // The same night against a quiet history is a regression.
    expect(decideVerdict(940, 1000, [1000, 1001, 999, 1000, 1000], THRESHOLDS).verdict).toBe('regression');
  });

  it('a quiet history (MAD 0) does not flag a small dip: the percentage must be passed too', () => {
    expect(decideVerdict(970, 1000, [1000, 1000, 1000], THRESHOLDS).verdict).toBe('ok');
  });

  it('improvement above the band and the percentage', () => {
    expect(decideVerdict(1100, 1000, [1000, 1000, 1000], THRESHOLDS).verdict).toBe('improvement');
    expect(decideVerdict(1040, 1000, [1000, 1000, 1000], THRESHOLDS).verdict).toBe('ok');
  });

  it('with too little history the baseline decides', () => {
    const v = decideVerdict(900, 1000, [1000, 1000], THRESHOLDS);
    expect(v).toMatchObject({ verdict: 'regression', comparison: { comparedWith: 'baseline', historyNights: 2, historyMedian: 1000 } });
    expect(decideVerdict(960, 1000, [], THRESHOLDS).verdict).toBe('ok');
    expect(decideVerdict(500, undefined, [1000], THRESHOLDS)).toMatchObject({ verdict: 'ok', comparison: { comparedWith: 'nothing' } });
  });

  it('the thresholds of the suite are used', () => {
    const strict = { ...THRESHOLDS, regressionPercent: 1, noiseBandMads: 0 };
    expect(decideVerdict(980, 1000, [1000, 1000, 1000], strict).verdict).toBe('regression');
    expect(decideVerdict(980, 1000, [1000, 1000, 1000], { ...THRESHOLDS, minHistoryNights: 5 }).comparison.comparedWith).toBe('baseline');
  });

  it('a failed or skipped case keeps its history numbers for the report', () => {
    const c: BenchmarkCase = tableCases()[0];
    const failed = judgeCase(
      c,
      { kind: 'failed', failureClass: 'out-of-memory', reason: 'device out of memory', excerpt: ['RuntimeError: NPU out of memory'] },
      [2800, 2850, 2900],
      THRESHOLDS,
    );
    expect(failed).toMatchObject({
      verdict: 'failed',
      failureClass: 'out-of-memory',
      reason: 'device out of memory',
      baseline: 2849,
      comparison: { historyMedian: 2850, historyNights: 3 },
    });
    expect(failed.throughput).toBeUndefined();
    const skipped = judgeCase(c, { kind: 'skipped', reason: 'needs 4 nodes; the pool has 1 free' }, [], THRESHOLDS);
    expect(skipped).toMatchObject({
      verdict: 'skipped',
      reason: 'needs 4 nodes; the pool has 1 free',
      comparison: { comparedWith: 'baseline', historyNights: 0 },
    });
    const measured = judgeCase(
      c,
      { kind: 'measured', throughput: { tokensPerSecondPerDevice: 2849, min: 2800, max: 2900, mad: 10, msPerIteration: 1, iterations: 20 } },
      [],
      THRESHOLDS,
    );
    expect(measured).toMatchObject({ caseId: c.id, verdict: 'ok', preset: 'aquila-7b', comparison: { changeVsBaselinePercent: 0 } });
  });
});

describe('environment fingerprint', () => {
  const suite = defaultSuite();
  it('lists what changed between two runs', () => {
    const before = { linkflowVersion: '0.1.0', cannVersion: '8.0.RC2', driverVersion: '24.1.rc2', modellinkCommit: 'abc', suite };
    const after = { ...before, cannVersion: '8.0.RC3', extra: { torchNpu: '2.1.0' } };
    expect(fingerprintChanges(before, after)).toEqual([
      { field: 'cannVersion', before: '8.0.RC2', after: '8.0.RC3' },
      { field: 'extra.torchNpu', after: '2.1.0' },
    ]);
    // The same suite written in another key order is not a change; another threshold is.
    const { thresholds, ...rest } = suite;
    const reordered = JSON.parse(JSON.stringify({ thresholds, ...rest })) as typeof suite;
    expect(Object.keys(reordered)).not.toEqual(Object.keys(suite));
    expect(fingerprintChanges(before, { ...before, suite: reordered })).toEqual([]);
    expect(fingerprintChanges(before, { ...before, suite: { ...suite, thresholds: { ...suite.thresholds, regressionPercent: 3 } } })).toEqual([
      { field: 'suite' },
    ]);
  });
});
