/** An evaluate stage: evaluation.py on the loaded weights, its results written to results.json. */
import path from 'node:path';
import { buildEvaluate } from '../frameworks/modellink/commands.ts';
import { checkEvaluationDataPaths, checkLastDataPath, scoreLineTask } from '../frameworks/modellink/rules.ts';
import { withModelType, withNewNames } from '../frameworks/dialect.ts';
import type { EvaluateStage } from '../spec/spec.ts';
import { weightsToLoad, type StageContext, type StageDraft } from './context.ts';

export function planEvaluate(ctx: StageContext, stage: EvaluateStage): StageDraft {
  const { load, lora } = weightsToLoad(ctx, stage);
  const tasks = stage.tasks.map((t, j) => ({ name: t.name, dataPath: ctx.ref(`tasks[${j}].dataPath`, t.dataPath, [], 'dir') ?? '' }));
  // A verbatim --task-data-path in args replaces the tasks' paths: that is what evaluation.py gets.
  if (!(stage.args && '--task-data-path' in stage.args)) {
    if (ctx.framework.evaluationDataPath === 'by-name') checkEvaluationDataPaths(tasks, ctx.specPath, ctx.problems);
    else checkLastDataPath(ctx.framework.name, tasks, ctx.specPath, ctx.problems);
  }
  const output = path.join(ctx.dir, 'results.json');
  const built = load && ctx.tokenizer ? buildEvaluate(ctx.stageSpec, ctx.preset, stage, { load, tokenizer: ctx.tokenizer, tasks, lora }) : undefined;
  const command = built && { ...built, args: withNewNames(ctx.framework, withModelType(ctx.framework, built.args, ctx.spec.model.impl)) };
  return { command, output, outputKind: 'results', evaluate: { tasks: stage.tasks.map((t) => scoreLineTask(t.name)), resultsFile: output } };
}
