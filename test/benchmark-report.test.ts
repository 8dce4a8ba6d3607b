/** Benchmark reports: the terminal table, the self-contained HTML page (parsed), the webhook summary. */
import { parse, type HTMLElement } from 'node-html-parser';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { caseChart, htmlReport, loadRunReport, needsNotification, terminalReport, webhookSummary } from '../benchmark/report.ts';
import { defaultStorePath, openBenchmarkStore, type BenchmarkStore } from '../benchmark/store.ts';
import type { RunReport } from '../benchmark/records.ts';
import { formatPercent } from '../benchmark/report-format.ts';
import { tempDir } from '../testkit/specs.ts';
import { fingerprint, simulateNight } from '../testkit/benchmarks.ts';

const OK = 'llama2-7b-seq4k-mcore-1x8-bf16';
const SLOW = 'qwen15-7b-seq8k-legacy-1x8-bf16';
const FAILS = 'aquila-7b-seq2k-legacy-1x8-bf16';
const SKIPPED = 'llama2-70b-seq4k-legacy-4x8-bf16';
const HOSTILE = '<script>alert("x")</script> & \'quotes\'';

let store: BenchmarkStore;
let report: RunReport;

beforeEach(() => {
  store = openBenchmarkStore(defaultStorePath(tempDir('bench-report')));
  for (const n of [1, 2, 3]) {
    simulateNight(store, {
      runId: `night-${n}`,
      startedAt: `2024-10-0${n}T18:00:00.000Z`,
      cases: { [OK]: 4672 + n, [SLOW]: 2862 - n, [FAILS]: 2849, [SKIPPED]: { kind: 'skipped', reason: 'needs 4 nodes; the pool has 1 free' } },
    });
  }
  simulateNight(store, {
    runId: 'night-4',
    startedAt: '2024-10-04T18:00:00.000Z',
    fingerprint: fingerprint({ cannVersion: '8.0.RC3' }),
    cases: {
      [OK]: 4674,
      [SLOW]: 2860 * 0.85,
      [FAILS]: {
        kind: 'failed',
        failureClass: 'communication',
        reason: `HCCL timeout ${HOSTILE}`,
        excerpt: ['EI0002: The wait execution of the Notify register times out.', HOSTILE],
      },
      [SKIPPED]: { kind: 'skipped', reason: 'needs 4 nodes; the pool has 1 free' },
    },
  });
  report = loadRunReport(store, { cluster: 'pool-a' })!;
});

afterEach(() => store.close());

describe('report data', () => {
  it('is the newest run with its cases, each case’s nights and the previous fingerprint', () => {
    expect(report.run.id).toBe('night-4');
    expect(report.cases.map((c) => [c.caseId, c.verdict])).toEqual([
      [OK, 'ok'],
      [SLOW, 'regression'],
      [FAILS, 'failed'],
      [SKIPPED, 'skipped'],
    ]);
    expect(report.series[SLOW].map((p) => p.runId)).toEqual(['night-1', 'night-2', 'night-3', 'night-4']);
    expect(report.previous?.runId).toBe('night-3');
    expect(loadRunReport(store, { runId: 'night-2' })?.series[OK].map((p) => p.runId)).toEqual(['night-1', 'night-2']);
  });
});

describe('terminal report', () => {
  it('is an aligned table of case, baseline, last, history median, change, verdict, then the reasons', () => {
    const text = terminalReport(report);
    const lines = text.split('\n');
    const header = lines.find((l) => l.startsWith('case'))!;
    expect(header.split(/\s{2,}/)).toEqual(['case', 'baseline', 'last', 'history median', 'change', 'verdict']);
    const rows = [OK, SLOW, FAILS, SKIPPED].map((id) => lines.find((l) => l.startsWith(`${id} `))!);
    // Every row's verdict starts in the header's verdict column, and numbers end where their header ends.
    const verdictAt = header.indexOf('verdict');
    for (const row of rows) expect(row.slice(verdictAt)).toMatch(/^(ok|regression|failed|skipped)$/);
    const lastEnd = header.indexOf('last') + 'last'.length;
    expect(rows[0].slice(0, lastEnd).endsWith('4674')).toBe(true);
    expect(rows[1]).toMatch(/2431 +2860 \(3n\) +−15\.0 % vs history +regression$/);
    expect(rows[0]).toMatch(/4672 +4674 +4674 \(3n\) +±0\.0 % vs history +ok$/);
    expect(rows[3]).toMatch(/—  +skipped$/);
    expect(text).toContain(`${FAILS}: failed (communication): HCCL timeout ${HOSTILE}`);
    expect(text).toContain('1 ok · 1 regression · 0 improvement · 1 failed · 1 skipped');
    expect(text).toContain('Changed since run night-3: cannVersion 8.0.RC2 → 8.0.RC3');
    expect([formatPercent(-0.04), formatPercent(0.06), formatPercent(-14.96)]).toEqual(['±0.0 %', '+0.1 %', '−15.0 %']);
  });
});

describe('HTML report', () => {
  let html: string;
  let doc: HTMLElement;
  beforeEach(() => {
    html = htmlReport(report);
    doc = parse(html);
  });

  it('has a section with a chart and a summary row for every case', () => {
    for (const c of report.cases) {
      const section = doc.querySelector(`section.case[data-case="${c.caseId}"]`);
      expect(section, c.caseId).not.toBeNull();
      expect(section!.getAttribute('data-verdict')).toBe(c.verdict);
      expect(section!.querySelector('svg.chart'), c.caseId).not.toBeNull();
      expect(doc.querySelector(`table.summary tr[data-case="${c.caseId}"]`), c.caseId).not.toBeNull();
    }
    expect(doc.querySelectorAll('section.case')).toHaveLength(4);
  });

  it('draws throughput per night, the baseline as a line, and marks the regression', () => {
    const chart = doc.querySelector(`section[data-case="${SLOW}"] svg`)!;
    expect(chart.querySelectorAll('circle.night')).toHaveLength(4);
    const marks = chart.querySelectorAll('circle.mark.regression');
    expect(marks.map((m) => m.getAttribute('data-run'))).toEqual(['night-4']);
    const baseline = chart.querySelector('line.baseline')!;
    expect(baseline.querySelector('title')!.text).toBe('baseline 2862');
    expect(chart.querySelector('polyline.throughput')!.getAttribute('points')!.split(' ')).toHaveLength(4);
    // The regressed night is drawn lower than the others (SVG y grows downwards).
    const ys = chart.querySelectorAll('circle.night').map((c) => Number(c.getAttribute('cy')));
    expect(Math.max(...ys)).toBe(ys[3]);
    // Healthy cases have no mark; the failed night is a cross on the axis.
    expect(doc.querySelectorAll(`section[data-case="${OK}"] circle.mark`)).toHaveLength(0);
    expect(doc.querySelectorAll(`section[data-case="${FAILS}"] path.night.failed`).map((p) => p.getAttribute('data-run'))).toEqual(['night-4']);
    // A case never measured still shows its baseline and its skipped nights.
    const skipped = doc.querySelector(`section[data-case="${SKIPPED}"] svg`)!;
    expect(skipped.querySelectorAll('path.night.skipped')).toHaveLength(4);
    expect(skipped.querySelector('line.baseline')).not.toBeNull();
    const never = { ...report.cases[3], baseline: undefined, comparison: { comparedWith: 'nothing' as const, historyNights: 0 } };
    expect(parse(caseChart(never, [])).querySelector('text')!.text).toBe('no measurement yet');
  });

  it('has the summary at the top', () => {
    const counts = Object.fromEntries(
      doc.querySelectorAll('header .counts span').map((s) => [s.getAttribute('data-verdict'), Number(s.getAttribute('data-count'))]),
    );
    expect(counts).toEqual({ ok: 1, regression: 1, improvement: 0, failed: 1, skipped: 1 });
    expect(doc.querySelector('header h1')!.text).toBe('Benchmark modellink-table on pool-a');
    expect(doc.querySelector('header .changes')!.text).toContain('cannVersion: 8.0.RC2 → 8.0.RC3');
  });

  it('is self-contained and escapes every text', () => {
    expect(doc.querySelectorAll('script')).toHaveLength(0);
    expect(doc.querySelectorAll('link, img, iframe, object')).toHaveLength(0);
    expect(html).not.toMatch(/\bsrc=|@import|url\(|@font-face|<script/i);
    // Only the SVG namespace names a URL.
    expect(html.match(/https?:\/\/[^"]+/g)?.every((u) => u === 'http://www.w3.org/2000/svg')).toBe(true);
    const failed = doc.querySelector(`section[data-case="${FAILS}"]`)!;
    // The text reads back as written, because it was escaped on the way in.
    expect(failed.querySelector('p.reason')!.text).toBe(`HCCL timeout ${HOSTILE}`);
    expect(failed.querySelector('pre.excerpt')!.text.split('\n')[1]).toBe(HOSTILE);
    expect(failed.querySelector('pre.excerpt')!.innerHTML).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;');
  });
});

describe('webhook summary', () => {
  it('carries the run, counts per verdict, the regressed and failed cases with numbers and reasons, and the fingerprint', () => {
    const s = webhookSummary(report);
    expect(s).toMatchObject({
      kind: 'linkflow.benchmark',
      runId: 'night-4',
      suite: 'modellink-table',
      cluster: 'pool-a',
      status: 'completed',
      counts: { ok: 1, regression: 1, improvement: 0, failed: 1, skipped: 1 },
      failed: [
        {
          caseId: FAILS,
          failureClass: 'communication',
          reason: `HCCL timeout ${HOSTILE}`,
          logExcerpt: ['EI0002: The wait execution of the Notify register times out.', HOSTILE],
        },
      ],
      fingerprint: { cannVersion: '8.0.RC3', driverVersion: '24.1.rc2', modellinkCommit: 'd4feda79', linkflowVersion: '0.1.0' },
      changes: [{ field: 'cannVersion', before: '8.0.RC2', after: '8.0.RC3' }],
    });
    expect(s.regressions).toHaveLength(1);
    expect(s.regressions[0]).toMatchObject({
      caseId: SLOW,
      preset: 'qwen15-7b',
      baseline: 2862,
      historyMedian: 2860,
      historyNights: 3,
      comparedWith: 'history',
    });
    expect(s.regressions[0].changeVsHistoryPercent).toBeCloseTo(-15, 6);
    expect(s.regressions[0].last).toBeCloseTo(2431, 6);
    expect(s.fingerprint.suite.name).toBe('modellink-table');
    expect(s.text).toBe(
      `linkflow benchmark modellink-table on pool-a, run night-4: 1 regression (${SLOW} −15.0 % at 2431); 1 failed (${FAILS}: communication); changed: cannVersion`,
    );
    // What a webhook POST body will be: plain JSON.
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    expect(needsNotification(s)).toBe(true);
  });

  it('is not sent for a run where everything was ok or skipped', () => {
    simulateNight(store, {
      runId: 'night-5',
      startedAt: '2024-10-05T18:00:00.000Z',
      cases: { [OK]: 4673, [SKIPPED]: { kind: 'skipped', reason: 'needs 4 nodes' } },
    });
    const s = webhookSummary(loadRunReport(store)!);
    expect(s.runId).toBe('night-5');
    expect(s.counts).toMatchObject({ ok: 1, skipped: 1, regression: 0, failed: 0 });
    expect(needsNotification(s)).toBe(false);
  });
});
