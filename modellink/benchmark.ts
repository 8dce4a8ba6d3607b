/**
 * Nightly benchmarks, the pure core (issue 5): the suite and its cases (benchmark-suite.ts), throughput from
 * the iteration log (benchmark-throughput.ts), the verdict against history and baseline (benchmark-verdict.ts)
 * and the environment fingerprint (benchmark-fingerprint.ts). Import from here.
 */
export * from './benchmark-suite.ts';
export * from './benchmark-throughput.ts';
export * from './benchmark-verdict.ts';
export * from './benchmark-fingerprint.ts';
