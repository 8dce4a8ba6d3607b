/**
 * The benchmark report as one self-contained HTML page: no script, no font, no stylesheet or image from
 * anywhere, so it opens from a file in any browser without a server or internet. Charts are inline SVG.
 * Every piece of text that comes from data (case ids, reasons, log lines, versions) is escaped.
 */
import { fingerprintChanges, VERDICTS } from './core.ts';
import type { CaseRecord, RunReport, SeriesPoint } from './records.ts';
import { caseLine, countVerdicts, formatPercent, formatThroughput } from './report-format.ts';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const e = escapeHtml;

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 0 0 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { padding: 3px 10px; text-align: left; border-bottom: 1px solid #e3e3e3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-weight: 600; }
.ok { color: #2e7d32; } .regression { color: #c62828; } .improvement { color: #1565c0; }
.failed { color: #8e24aa; } .skipped { color: #757575; }
.counts span { margin-right: 14px; }
.legend { color: #555; font-size: 12px; }
section.case { border-top: 1px solid #ccc; padding: 12px 0; }
.reason { color: #444; margin: 4px 0; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
svg .axis { stroke: #999; stroke-width: 1; }
svg .label { font-size: 11px; fill: #555; }
svg line.baseline { stroke: #ef6c00; stroke-width: 1.5; stroke-dasharray: 6 4; }
svg rect.noise-band { fill: #90caf9; opacity: 0.3; }
svg polyline.throughput { fill: none; stroke: #1976d2; stroke-width: 2; }
svg circle.night { fill: #1976d2; }
svg circle.mark.regression { fill: #c62828; stroke: #c62828; }
svg circle.mark.improvement { fill: #2e7d32; }
svg path.night { stroke: #8e24aa; stroke-width: 2; }
svg path.night.skipped { stroke: #9e9e9e; }
`;

const W = 640;
const H = 200;
const M = { left: 56, right: 16, top: 12, bottom: 28 };

function day(iso: string): string {
  return iso.slice(0, 10);
}

/** Throughput per night, the baseline as a dashed line, tonight's noise band, regressions marked. */
export function caseChart(c: CaseRecord, points: readonly SeriesPoint[]): string {
  const measured = points.filter((p) => p.tokensPerSecondPerDevice !== undefined);
  const values = measured.map((p) => p.tokensPerSecondPerDevice!);
  const baseline = c.baseline;
  if (baseline !== undefined) values.push(baseline);
  const { noiseLow, noiseHigh } = c.comparison;
  if (noiseLow !== undefined && noiseHigh !== undefined) values.push(noiseLow, noiseHigh);
  const title = `<title>${e(`Throughput of ${c.caseId} per night (tokens/s per device)`)}</title>`;
  if (values.length === 0 || points.length === 0) {
    return `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="60" viewBox="0 0 ${W} 60" role="img">${title}<text class="label" x="8" y="30">no measurement yet</text></svg>`;
  }
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  const pad = (hi - lo) * 0.1 || Math.max(Math.abs(hi) * 0.05, 1);
  lo = Math.max(0, lo - pad);
  hi += pad;
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (i: number) => M.left + (points.length === 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const y = (v: number) => M.top + plotH - ((v - lo) / (hi - lo)) * plotH;
  const r = (n: number) => n.toFixed(1);
  const parts: string[] = [title];
  parts.push(`<line class="axis" x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}"/>`);
  parts.push(`<line class="axis" x1="${M.left}" y1="${M.top + plotH}" x2="${W - M.right}" y2="${M.top + plotH}"/>`);
  parts.push(`<text class="label" x="${M.left - 6}" y="${r(M.top + 10)}" text-anchor="end">${e(formatThroughput(hi))}</text>`);
  parts.push(`<text class="label" x="${M.left - 6}" y="${r(M.top + plotH)}" text-anchor="end">${e(formatThroughput(lo))}</text>`);
  parts.push(`<text class="label" x="${M.left}" y="${H - 8}">${e(day(points[0].startedAt))}</text>`);
  if (points.length > 1)
    parts.push(`<text class="label" x="${W - M.right}" y="${H - 8}" text-anchor="end">${e(day(points[points.length - 1].startedAt))}</text>`);
  if (noiseLow !== undefined && noiseHigh !== undefined) {
    parts.push(
      `<rect class="noise-band" x="${M.left}" y="${r(y(noiseHigh))}" width="${plotW}" height="${r(Math.max(1, y(noiseLow) - y(noiseHigh)))}"><title>${e(`noise band ${formatThroughput(noiseLow)}–${formatThroughput(noiseHigh)}`)}</title></rect>`,
    );
  }
  if (baseline !== undefined) {
    parts.push(
      `<line class="baseline" x1="${M.left}" y1="${r(y(baseline))}" x2="${W - M.right}" y2="${r(y(baseline))}"><title>${e(`baseline ${formatThroughput(baseline)}`)}</title></line>`,
    );
  }
  const line = points.map((p, i) => (p.tokensPerSecondPerDevice !== undefined ? `${r(x(i))},${r(y(p.tokensPerSecondPerDevice))}` : '')).filter(Boolean);
  if (line.length > 1) parts.push(`<polyline class="throughput" points="${line.join(' ')}"/>`);
  points.forEach((p, i) => {
    const tip = `${day(p.startedAt)} run ${p.runId}: ${p.tokensPerSecondPerDevice !== undefined ? formatThroughput(p.tokensPerSecondPerDevice) : 'no figure'} (${p.verdict})`;
    const data = `data-run="${e(p.runId)}" data-verdict="${p.verdict}"`;
    if (p.tokensPerSecondPerDevice === undefined) {
      // Failed and skipped nights sit on the axis as a cross: the gap in the line is explained.
      const cx = x(i);
      const cy = M.top + plotH - 6;
      parts.push(
        `<path class="night ${p.verdict}" ${data} d="M${r(cx - 5)},${r(cy - 5)}L${r(cx + 5)},${r(cy + 5)}M${r(cx - 5)},${r(cy + 5)}L${r(cx + 5)},${r(cy - 5)}"><title>${e(tip)}</title></path>`,
      );
      return;
    }
    const marked = p.verdict === 'regression' || p.verdict === 'improvement';
    parts.push(
      `<circle class="night${marked ? ` mark ${p.verdict}` : ''}" ${data} cx="${r(x(i))}" cy="${r(y(p.tokensPerSecondPerDevice))}" r="${marked ? 6 : 3.5}"><title>${e(tip)}</title></circle>`,
    );
  });
  return `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">${parts.join('')}</svg>`;
}

function anchor(caseId: string): string {
  return `case-${caseId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

function summaryTable(cases: readonly CaseRecord[]): string {
  const rows = cases.map((c) => {
    const l = caseLine(c);
    return `<tr data-case="${e(c.caseId)}"><td><a href="#${e(anchor(c.caseId))}">${e(l.caseId)}</a></td><td class="num">${e(l.baseline)}</td><td class="num">${e(l.last)}</td><td class="num">${e(l.historyMedian)}</td><td class="num">${e(l.change)}</td><td class="verdict ${l.verdict}">${e(l.verdict)}</td></tr>`;
  });
  return `<table class="summary"><thead><tr><th>case</th><th>baseline</th><th>last</th><th>history median</th><th>change</th><th>verdict</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function caseSection(c: CaseRecord, points: readonly SeriesPoint[]): string {
  const k = c.comparison;
  const t = c.throughput;
  const facts: [string, string][] = [
    ['preset', c.preset ?? '—'],
    [
      'layout',
      `${c.shape.nodes}×${c.shape.devicesPerNode}${c.parallel ? `, tp ${c.parallel.tp}, pp ${c.parallel.pp}${c.parallel.cp > 1 ? `, cp ${c.parallel.cp}` : ''}${c.parallel.ep > 1 ? `, ep ${c.parallel.ep}` : ''}, global batch ${c.parallel.globalBatchSize}` : ''}`,
    ],
    ['baseline', formatThroughput(c.baseline)],
    [
      'last',
      t
        ? `${formatThroughput(t.tokensPerSecondPerDevice)} (min ${formatThroughput(t.min)}, max ${formatThroughput(t.max)}, MAD ${formatThroughput(t.mad)}, ${t.iterations} iterations)`
        : '—',
    ],
    ['TFLOP/s per device', t?.tflopsPerDevice !== undefined ? t.tflopsPerDevice.toFixed(1) : '—'],
    [
      'history',
      k.historyMedian !== undefined
        ? `median ${formatThroughput(k.historyMedian)}, MAD ${formatThroughput(k.historyMad)} over ${k.historyNights} nights`
        : `${k.historyNights} nights`,
    ],
    [
      'change',
      `${formatPercent(k.changeVsHistoryPercent)} vs history, ${formatPercent(k.changeVsBaselinePercent)} vs baseline (judged against ${k.comparedWith})`,
    ],
  ];
  if (c.failureClass) facts.push(['failure class', c.failureClass]);
  const excerpt = c.excerpt && c.excerpt.length > 0 ? `<pre class="excerpt">${e(c.excerpt.join('\n'))}</pre>` : '';
  return (
    `<section class="case" id="${e(anchor(c.caseId))}" data-case="${e(c.caseId)}" data-verdict="${c.verdict}">` +
    `<h2>${e(c.caseId)} <span class="verdict ${c.verdict}">${e(c.verdict)}</span></h2>` +
    `<div>${e(c.title)}</div><p class="reason">${e(c.reason)}</p>` +
    `<table class="facts">${facts.map(([k2, v]) => `<tr><th>${e(k2)}</th><td>${e(v)}</td></tr>`).join('')}</table>` +
    caseChart(c, points) +
    excerpt +
    '</section>'
  );
}

export function htmlReport(report: RunReport): string {
  const { run, cases } = report;
  const counts = countVerdicts(cases);
  const fp = run.fingerprint;
  const env: [string, string][] = [
    ['ModelLink commit', fp.modellinkCommit ?? 'unknown'],
    ['CANN', fp.cannVersion ?? 'unknown'],
    ['driver', fp.driverVersion ?? 'unknown'],
    ['linkflow', fp.linkflowVersion],
    ...Object.entries(fp.extra ?? {}),
  ];
  const changes = report.previous ? fingerprintChanges(report.previous.fingerprint, fp) : [];
  const changed = report.previous
    ? changes.length > 0
      ? `<p>Changed since run ${e(report.previous.runId)}:</p><ul class="changes">${changes.map((ch) => (ch.field === 'suite' ? '<li>the suite (cases, iterations, thresholds or environment)</li>' : `<li>${e(ch.field)}: ${e(ch.before ?? '—')} → ${e(ch.after ?? '—')}</li>`)).join('')}</ul>`
      : `<p class="changes">Nothing in the environment changed since run ${e(report.previous.runId)}.</p>`
    : '';
  const head =
    `<h1>Benchmark ${e(run.suiteName)} on ${e(run.cluster)}</h1>` +
    `<p>Run ${e(run.id)} · started ${e(run.startedAt)}${run.finishedAt ? ` · finished ${e(run.finishedAt)}` : ''} · ${e(run.status)}</p>` +
    `<p class="counts">${VERDICTS.map((v) => `<span class="${v}" data-verdict="${v}" data-count="${counts[v]}">${counts[v]} ${v}</span>`).join('')}</p>` +
    `<p class="legend">Charts: tokens/s per device per night (blue line), the table's baseline (dashed orange), the history's noise band ` +
    `the verdict used (shaded), regressions as red dots, improvements green, failed and skipped nights as crosses on the axis.</p>` +
    `<table class="environment">${env.map(([k, v]) => `<tr><th>${e(k)}</th><td>${e(v)}</td></tr>`).join('')}</table>${changed}`;
  const sections = cases.map((c) => caseSection(c, report.series[c.caseId] ?? [])).join('\n');
  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${e(`linkflow benchmark: ${run.suiteName} ${run.startedAt.slice(0, 10)}`)}</title><style>${STYLE}</style></head>\n<body>` +
    `<header>${head}</header>\n<main>${summaryTable(cases)}\n${sections}</main></body></html>\n`
  );
}
