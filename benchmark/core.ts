/**
 * Nightly benchmarks, the pure core (issue 5): the suite and its cases (suite.ts), throughput from
 * the iteration log (throughput.ts), the verdict against history and baseline (verdict.ts)
 * and the environment fingerprint (fingerprint.ts). Import from here.
 */
export * from './suite.ts';
export * from './throughput.ts';
export * from './verdict.ts';
export * from './fingerprint.ts';
