/** The nightly benchmark as a Temporal Schedule: its id, and create or update (`linkflow bench schedule`). */
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptionsAction } from '@temporalio/client';
import type { BenchmarkSuite } from '../benchmark/core.ts';
import { benchmarkWorkflowType } from '../contracts/workflows.ts';

export const SCHEDULE_PREFIX = 'linkflow-bench-';

export function scheduleId(suite: BenchmarkSuite, id?: string): string {
  return id ?? `${SCHEDULE_PREFIX}${suite.name}`;
}

function action(suite: BenchmarkSuite, taskQueue: string): ScheduleOptionsAction {
  return { type: 'startWorkflow', workflowType: benchmarkWorkflowType, workflowId: `bench-${suite.name}`, args: [{ suite }], taskQueue };
}

export async function createOrUpdateSchedule(
  client: Client,
  suite: BenchmarkSuite,
  options: { id?: string; cron: string; timezone: string; catchupWindow: string; pauseOnFailure: boolean; taskQueue: string },
): Promise<'created' | 'updated'> {
  const id = scheduleId(suite, options.id);
  const spec = { cronExpressions: [options.cron], timezone: options.timezone };
  // A night missed while the server was down runs when it is back, within the catch-up window; a night still running makes the next one skip.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: options.catchupWindow, pauseOnFailure: options.pauseOnFailure };
  try {
    await client.schedule.getHandle(id).update((previous) => ({ ...previous, spec, action: action(suite, options.taskQueue), policies }));
    return 'updated';
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
  await client.schedule.create({
    scheduleId: id,
    spec,
    action: action(suite, options.taskQueue),
    policies,
    state: { note: `linkflow nightly benchmark of suite ${suite.name}` },
  });
  return 'created';
}
