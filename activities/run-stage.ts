/**
 * One attempt of one stage, in the order things happen: prepare (inputs, the checkpoint to resume
 * from, the launch, the save directory's lease), watch (the log into heartbeats, NaN loss, hangs and
 * a lost lease detected, cancellation), outcome (success with its output checked, or a classified
 * failure with the log excerpt that shows why). The phases are in attempt/.
 */
import { Context } from '@temporalio/activity';
import fs from 'node:fs';
import path from 'node:path';
import type { AttemptResult } from '../contracts/run-state.ts';
import { timestamp, type AttemptInput } from './attempt/common.ts';
import { attemptOutcome } from './attempt/outcome.ts';
import { prepareAttempt } from './attempt/prepare.ts';
import { watchAttempt } from './attempt/watch.ts';

export type { AttemptInput } from './attempt/common.ts';

export async function runStageAttempt(input: AttemptInput): Promise<AttemptResult> {
  const ctx = Context.current();
  const logFile = openAttemptLog(input);
  const prepared = await prepareAttempt(ctx, input, logFile);
  if ('done' in prepared) return prepared.done;
  const watched = await watchAttempt(ctx, input, prepared.ready, logFile);
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
