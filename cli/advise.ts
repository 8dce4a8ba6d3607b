/** `linkflow advise`: a save interval from the attempt log of every run of a pipeline (Young/Daly, plan/advise.ts). */
import { connectClient } from '../client/connect.ts';
import { mergeRuns, statesOfAllRuns } from '../client/pipeline.ts';
import { adviseForUser, observationsOf, wallClockIterationMs } from '../plan/advise.ts';
import { ExitError } from '../errors.ts';
import { loadConfig } from '../temporal.config.ts';

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

/** Above 100 %: the model's expected loss exceeds the time itself, which needs saying in words. */
function lossText(x: number): string {
  return x > 1
    ? `${pct(x)} (over 100 %: failures come faster than the run gets from one save to the next, so at this interval it would make no progress)`
    : pct(x);
}

export async function adviseCommand(id: string, opts: { json?: boolean }): Promise<void> {
  const client = await connectClient(loadConfig());
  const states = await statesOfAllRuns(client, id);
  const merged = mergeRuns(states);
  if (!merged) throw new ExitError(`no pipeline ${id}; \`linkflow list\` shows them`, 1);
  const advice = merged.stages
    .filter((s) => s.kind === 'pretrain' || s.kind === 'finetune')
    .map((s) => {
      const base = observationsOf(s);
      const wallMs = wallClockIterationMs(s);
      const observed = base && wallMs ? { ...base, iterationMs: wallMs } : base;
      return { stage: s.name, runs: states.length, observed, advice: observed ? adviseForUser(observed) : undefined };
    });
  if (opts.json) {
    console.log(JSON.stringify({ workflowId: id, runs: states.length, stages: advice }));
    return;
  }
  for (const a of advice) {
    if (!a.observed || !a.advice) {
      console.log(`${a.stage}: no failures (or no saves) observed yet in ${a.runs} run(s); nothing to advise`);
      continue;
    }
    const o = a.observed;
    console.log(
      `${a.stage}: ${o.failures} failure(s) in ${sec(o.runMs)} of training over ${a.runs} run(s) (MTBF ${sec(a.advice.mtbfMs)}); a save takes ${sec(o.saveMs)}, recovery ${sec(o.recoveryMs)}, an iteration ${o.iterationMs.toFixed(0)} ms (wall clock)`,
    );
    if (a.advice.keep) {
      console.log(
        `  keep saving every ${o.saveInterval} iterations: expected time lost ${lossText(a.advice.wasteNow)}; Daly's interval (${sec(a.advice.dalyMs)}) would not lose less`,
      );
      continue;
    }
    console.log(
      `  save every ${a.advice.recommendedIterations} iterations (Daly ${sec(a.advice.dalyMs)}, Young ${sec(a.advice.youngMs)}) instead of ${o.saveInterval}: expected time lost ${lossText(a.advice.wasteRecommended)} instead of ${lossText(a.advice.wasteNow)}`,
    );
    console.log(`  apply it: linkflow save-interval ${id} ${a.advice.recommendedIterations}   (or saveInterval in the spec)`);
  }
}
