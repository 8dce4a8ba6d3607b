/**
 * One chunk of an attempt log from the node that holds it: the client cannot run an activity itself,
 * so this workflow runs the node's readLogChunk on the node's own queue and returns its result. A
 * node whose worker is gone fails fast instead of leaving the reader waiting.
 */
import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import type { ReadLogChunkInput } from '../contracts/workflows.ts';

export async function readLogChunkWorkflow({ nodeQueue, file, offset }: ReadLogChunkInput): Promise<{ data: string; size: number }> {
  const { readLogChunk } = proxyActivities<typeof activities>({
    taskQueue: nodeQueue,
    scheduleToStartTimeout: '15s',
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 2 },
  });
  return readLogChunk({ file, offset });
}
