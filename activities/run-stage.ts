/**
 * One attempt of one stage, in the order things happen: prepare (inputs, the checkpoint to resume
 * from, the launch, the save directory's lease), watch (the log into heartbeats, NaN loss, hangs and
 * a lost lease detected, cancellation), outcome (success with its output checked, or a classified
 * failure with the log excerpt that shows why). The phases are in attempt/.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import fs from 'node:fs';
import path from 'node:path';
import type { AttemptResult } from '../contracts/run-state.ts';
import { timestamp, type AttemptInput } from './attempt/common.ts';
import { attemptOutcome } from './attempt/outcome.ts';
import { prepareAttempt } from './attempt/prepare.ts';
import { watchAttempt } from './attempt/watch.ts';
import { logsIterations } from '../plan/gang.ts';
import { attemptEnded, iterationsRecomputed, poolOf, stageSucceeded, type StageLabels } from './metrics.ts';
import { nodeName } from './node.ts';

export type { AttemptInput } from './attempt/common.ts';

export async function runStageAttempt(input: AttemptInput): Promise<AttemptResult> {
  const ctx = Context.current();
  const labels: StageLabels = { pipeline: input.pipeline, stage: input.stage.name, node: input.rank?.node ?? nodeName(), pool: poolOf(ctx.info.taskQueue) };
  const startedAt = Date.now();
  const seconds = () => (Date.now() - startedAt) / 1000;
  try {
    const result = await runPhases(ctx, input, labels);
    attemptEnded(labels, 'succeeded', undefined, seconds());
    if (logsIterations(input.rank) && input.stageStartedAt !== undefined) stageSucceeded(labels, (Date.now() - input.stageStartedAt) / 1000);
    return result;
  } catch (err) {
    if (err instanceof CancelledFailure) attemptEnded(labels, 'cancelled', undefined, seconds());
    else attemptEnded(labels, 'failed', err instanceof ApplicationFailure ? (err.type ?? 'unknown') : 'unknown', seconds());
    throw err;
  }
}

async function runPhases(ctx: Context, input: AttemptInput, labels: StageLabels): Promise<AttemptResult> {
  const logFile = openAttemptLog(input);
  const prepared = await prepareAttempt(ctx, input, logFile);
  if ('done' in prepared) return prepared.done;
  // Only the rank that logs iterations speaks for the stage (a gang's other ranks would count it again).
  const loaded = prepared.ready.loadedFrom;
  if (logsIterations(input.rank) && input.previousLastIteration !== undefined && loaded !== undefined)
    iterationsRecomputed(labels, input.previousLastIteration - loaded);
  const watched = await watchAttempt(ctx, input, prepared.ready, logFile, labels);
  return attemptOutcome(input, logFile, prepared.ready, watched);
}

/** The attempt's own log: the process's output, with linkflow's notes about it. */
function openAttemptLog({ pipeline, stage, attempt, rank }: AttemptInput): string {
  fs.mkdirSync(stage.logDir, { recursive: true });
  const logFile = path.join(stage.logDir, `attempt-${attempt}${rank ? `-rank-${rank.nodeRank}` : ''}-${timestamp()}.log`);
  fs.writeFileSync(
    logFile,
    `# linkflow pipeline ${pipeline}, stage ${stage.name} (${stage.kind}), attempt ${attempt}${rank ? `, node rank ${rank.nodeRank} of ${rank.nodes} on ${rank.node} (master ${rank.masterAddr}:${rank.masterPort})` : ''}\n`,
  );
  return logFile;
}
