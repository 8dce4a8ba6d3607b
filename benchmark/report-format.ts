/** How a case's numbers read, the same in the terminal table, the HTML page and the webhook text. */
import { VERDICTS, type Verdict } from './core.ts';
import type { CaseRecord, VerdictCounts } from './records.ts';

/** tokens/s per device: whole numbers from 100 up (as the table prints them), three digits below. */
export function formatThroughput(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  return Math.abs(n) >= 100 ? Math.round(n).toString() : n.toPrecision(3);
}

export function formatPercent(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  // Sign of the rounded figure: −0.04 % reads as ±0.0 %, not −0.0 %.
  const rounded = Math.round(n * 10) / 10;
  const sign = rounded > 0 ? '+' : rounded < 0 ? '−' : '±';
  return `${sign}${Math.abs(rounded).toFixed(1)} %`;
}

/** The change the verdict was decided on: against history when it was long enough, else against the baseline. */
function formatChange(c: CaseRecord): string {
  const k = c.comparison;
  if (k.comparedWith === 'history' && k.changeVsHistoryPercent !== undefined) return `${formatPercent(k.changeVsHistoryPercent)} vs history`;
  if (k.comparedWith === 'baseline' && k.changeVsBaselinePercent !== undefined) return `${formatPercent(k.changeVsBaselinePercent)} vs baseline`;
  return '—';
}

export interface CaseLine {
  caseId: string;
  baseline: string;
  last: string;
  historyMedian: string;
  change: string;
  verdict: Verdict;
}

export function caseLine(c: CaseRecord): CaseLine {
  return {
    caseId: c.caseId,
    baseline: formatThroughput(c.baseline),
    last: formatThroughput(c.throughput?.tokensPerSecondPerDevice),
    historyMedian: c.comparison.historyMedian !== undefined ? `${formatThroughput(c.comparison.historyMedian)} (${c.comparison.historyNights}n)` : '—',
    change: formatChange(c),
    verdict: c.verdict,
  };
}

export function countVerdicts(cases: readonly CaseRecord[]): VerdictCounts {
  const counts = Object.fromEntries(VERDICTS.map((v) => [v, 0])) as VerdictCounts;
  for (const c of cases) counts[c.verdict]++;
  return counts;
}

export function formatCounts(counts: VerdictCounts): string {
  return VERDICTS.map((v) => `${counts[v]} ${v}`).join(' · ');
}
