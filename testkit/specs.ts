/** Pipeline specs for tests: the demo's data on the emulator, in a temporary workspace. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { PROJECT_ROOT } from '../common/project-root.ts';

/** linkflow's checkout (common/project-root.ts), under the name the tests use. */
export const ROOT = PROJECT_ROOT;
export const DEMO = path.join(ROOT, 'examples', 'demo');
export const EMULATOR = path.join(ROOT, 'emulator');

export type RawSpec = Record<string, unknown> & { stages: Record<string, unknown>[] };

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `linkflow-${prefix}-`));
}

/** Every stage kind (preprocess, convert, pretrain, finetune, evaluate, inference) with fast emulator iterations. */
export function fiveStageSpec(
  name: string,
  workspace: string,
  opts: { trainIters?: number; saveInterval?: number; pretrainEnv?: Record<string, string>; noProgressTimeout?: string } = {},
): RawSpec {
  return {
    name,
    workspace,
    modellink: { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun'), env: { MLEMU_ITER_TIME_MS: '15' } },
    cluster: { nodes: 1, devicesPerNode: 1 },
    model: { preset: 'tiny', impl: 'mcore', tokenizer: path.join(DEMO, 'hf-tiny') },
    parallel: { tp: 1, pp: 1 },
    stages: [
      { name: 'data', kind: 'preprocess', input: path.join(DEMO, 'corpus.jsonl') },
      { name: 'sft-data', kind: 'preprocess', input: path.join(DEMO, 'alpaca.jsonl'), handler: 'AlpacaStyleInstructionHandler', promptType: 'llama2' },
      { name: 'weights', kind: 'convert', from: path.join(DEMO, 'hf-tiny') },
      {
        name: 'pretrain',
        kind: 'pretrain',
        data: 'data',
        load: 'weights',
        trainIters: opts.trainIters ?? 100,
        saveInterval: opts.saveInterval ?? 10,
        globalBatchSize: 8,
        noProgressTimeout: opts.noProgressTimeout ?? '60s',
        env: opts.pretrainEnv ?? {},
      },
      { name: 'finetune', kind: 'finetune', data: 'sft-data', load: 'pretrain', trainIters: 20, saveInterval: 10, globalBatchSize: 8, promptType: 'llama2' },
      { name: 'evaluate', kind: 'evaluate', load: 'finetune', tasks: [{ name: 'mmlu', dataPath: path.join(DEMO, 'mmlu', 'test') }] },
      { name: 'generate', kind: 'inference', load: 'finetune', maxNewTokens: 16, tasks: ['greedy', 'chat'], prompts: ['What is a checkpoint?'] },
    ],
  };
}

export function writeSpec(dir: string, spec: RawSpec, file = 'pipeline.yaml'): string {
  const p = path.join(dir, file);
  fs.writeFileSync(p, file.endsWith('.json') ? JSON.stringify(spec, null, 2) : YAML.stringify(spec));
  return p;
}

/** A spec made to drive another framework version (its emulator root, when given, replaces modellink.root). */
export function onFramework(spec: RawSpec, flavour: 'modellink' | 'mindspeed-llm', version?: string, root?: string): RawSpec {
  const modellink = spec.modellink as Record<string, unknown>;
  return { ...spec, modellink: { ...modellink, flavour, ...(version ? { version } : {}), ...(root ? { root } : {}) } };
}

/** DPO: pairwise preprocessing (AlpacaStylePairwiseHandler), HF → mcore, DPO from the converted weights, evaluation. */
export function dpoSpec(name: string, workspace: string, opts: { trainIters?: number; saveInterval?: number; dpoEnv?: Record<string, string> } = {}): RawSpec {
  const base = fiveStageSpec(name, workspace);
  return {
    ...base,
    stages: [
      {
        name: 'pairs',
        kind: 'preprocess',
        input: path.join(DEMO, 'pairwise.jsonl'),
        handler: 'AlpacaStylePairwiseHandler',
        promptType: 'llama2',
        // MindSpeed-LLM docs/pytorch/solutions/finetune/datasets/pairwise_dataset.md: orca_dpo_pairs style.
        mapKeys: { prompt: 'question', query: '', system: 'system' },
      },
      { name: 'weights', kind: 'convert', from: path.join(DEMO, 'hf-tiny') },
      {
        name: 'dpo',
        kind: 'dpo',
        data: 'pairs',
        load: 'weights',
        trainIters: opts.trainIters ?? 20,
        saveInterval: opts.saveInterval ?? 10,
        globalBatchSize: 8,
        promptType: 'llama2',
        noProgressTimeout: '60s',
        env: opts.dpoEnv ?? {},
      },
      { name: 'evaluate', kind: 'evaluate', load: 'dpo', tasks: [{ name: 'mmlu', dataPath: path.join(DEMO, 'mmlu', 'test') }] },
    ],
  };
}
