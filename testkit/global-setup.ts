/**
 * vitest's globalSetup: marks this run in the environment every test process inherits (before the
 * pool starts them), and at the end fails the run if any process the tests started still runs.
 */
import { randomUUID } from 'node:crypto';
import { describeLeftovers, reapLeftovers, RUN_ENV, vitestProcesses } from './leftovers.ts';

export function setup(): void {
  process.env[RUN_ENV] = randomUUID();
}

export async function teardown(): Promise<void> {
  const runId = process.env[RUN_ENV];
  if (!runId) return;
  // vitest and its pool workers carry the mark too; the workers exit after this teardown.
  // Processes still stopping get a grace (a supervisor outlives its worker for its grace period).
  const graceMs = Number(process.env.LINKFLOW_TEST_LEFTOVER_GRACE_MS ?? 15_000);
  const left = await reapLeftovers(runId, { exclude: vitestProcesses(), graceMs });
  if (left.length === 0) return;
  // vitest only logs an error thrown here: the exit code says it.
  process.exitCode = 1;
  throw new Error(describeLeftovers(left));
}
