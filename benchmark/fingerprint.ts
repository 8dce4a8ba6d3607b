/**
 * What a benchmark run ran on, recorded with every run so that a regression can be tied to what changed
 * (a driver, CANN or ModelLink upgrade, or a changed suite).
 */
import type { BenchmarkSuite } from './suite.ts';

export interface EnvironmentFingerprint {
  linkflowVersion: string;
  /** `git rev-parse HEAD` in the ModelLink checkout, where it is a git checkout. */
  modellinkCommit?: string;
  /** The CANN toolkit version (e.g. from ascend-toolkit's version.cfg or ASCEND_TOOLKIT_HOME). */
  cannVersion?: string;
  /** The NPU driver version (e.g. from /usr/local/Ascend/driver/version.info or npu-smi). */
  driverVersion?: string;
  /** Anything else worth tying a change to (host names, torch_npu version, …). */
  extra?: Record<string, string>;
  /** The suite as the run used it (defaults filled in). */
  suite: BenchmarkSuite;
}

export interface FingerprintChange {
  field: string;
  before?: string;
  after?: string;
}

/** Stable JSON (sorted keys) so that two equal suites compare equal whatever their key order. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The fields that differ between two runs' fingerprints; the suite is compared as a whole. */
export function fingerprintChanges(before: EnvironmentFingerprint, after: EnvironmentFingerprint): FingerprintChange[] {
  const changes: FingerprintChange[] = [];
  const scalar = (field: string, b: string | undefined, a: string | undefined) => {
    if (b !== a) changes.push({ field, ...(b !== undefined ? { before: b } : {}), ...(a !== undefined ? { after: a } : {}) });
  };
  scalar('modellinkCommit', before.modellinkCommit, after.modellinkCommit);
  scalar('cannVersion', before.cannVersion, after.cannVersion);
  scalar('driverVersion', before.driverVersion, after.driverVersion);
  scalar('linkflowVersion', before.linkflowVersion, after.linkflowVersion);
  const keys = [...new Set([...Object.keys(before.extra ?? {}), ...Object.keys(after.extra ?? {})])].sort();
  for (const k of keys) scalar(`extra.${k}`, before.extra?.[k], after.extra?.[k]);
  if (stableJson(before.suite) !== stableJson(after.suite)) changes.push({ field: 'suite' });
  return changes;
}
