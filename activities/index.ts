/** The activities a linkflow worker registers. Thin: the logic lives in the pure folders (frameworks/, plan/, failures/ ...) and node/. */
import type { StagePlan } from '../plan/plan.ts';
import type { StageCheck } from '../contracts/run-state.ts';
import { checkStageUpToDate, writeManifestFile } from './manifest.ts';

export { runStageAttempt } from './run-stage.ts';
export { checkNode, closedWorkflows, poolFreeNodes, requestPoolNodes } from './pool.ts';
export { nodeInfo, poolNodes } from './legacy-placement.ts';
export { readLogChunk } from './log-chunk.ts';
export { notifyWebhook } from './notify.ts';
export { preflightOnNode } from './preflight.ts';
export { beginBenchmarkRun, prepareBenchmarkCase, recordBenchmarkCase, finishBenchmarkRun, notifyBenchmarkWebhook } from './benchmark.ts';

export async function checkStage(input: { stage: StagePlan; upstream: Record<string, string> }): Promise<StageCheck> {
  return checkStageUpToDate(input.stage, input.upstream);
}

export async function writeManifest(input: { pipeline: string; stage: StagePlan; fingerprint: string; finalIteration?: number }): Promise<void> {
  const { stage } = input;
  writeManifestFile(stage, {
    pipeline: input.pipeline,
    stage: stage.name,
    kind: stage.kind,
    fingerprint: input.fingerprint,
    argv: stage.argv,
    env: stage.env,
    inputs: stage.inputs.map((i) => ({ path: i.path, fromStage: i.fromStage })),
    output: stage.output,
    finishedAt: new Date().toISOString(),
    finalIteration: input.finalIteration,
    ...(stage.framework ? { framework: stage.framework } : {}),
    ...(stage.converter ? { converter: stage.converter } : {}),
  });
}
