/** The conversion matrix: hf → legacy/mcore, legacy ↔ mcore, legacy/mcore → hf (with a LoRA merge), resharding. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { planPipeline } from '../plan/plan.ts';
import { DEMO, fiveStageSpec, type RawSpec } from '../testkit/specs.ts';

const REFERENCE = path.join(DEMO, '..', '..', 'reference', 'modellink');
const flagsJson = JSON.parse(fs.readFileSync(path.join(REFERENCE, 'flags.json'), 'utf8')) as {
  convert_ckpt_plugin_combinations: Record<string, { flags: { flag: string }[] }>;
};

function convertSpec(stages: Record<string, unknown>[], patch: Record<string, unknown> = {}): RawSpec {
  const spec = fiveStageSpec('conv', '/tmp/ws');
  spec.model = { preset: 'llama2-7b', impl: 'mcore', tokenizer: '/tmp/hf' };
  spec.cluster = { nodes: 1, devicesPerNode: 8 };
  spec.parallel = { tp: 2, pp: 2 };
  spec.stages = stages;
  return Object.assign(spec, patch);
}

function planOf(spec: RawSpec) {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r.plan;
}

const text = (argv: string[]) => argv.join(' ');

describe('convert stages', () => {
  const matrix = planOf(
    convertSpec([
      { name: 'hf2mcore', kind: 'convert', from: '/tmp/hf' },
      { name: 'hf2legacy', kind: 'convert', from: '/tmp/hf', to: 'legacy', tp: 1, pp: 4 },
      { name: 'mcore2legacy', kind: 'convert', from: 'hf2mcore', to: 'legacy' },
      { name: 'legacy2mcore', kind: 'convert', from: 'hf2legacy', to: 'mcore', tp: 2, pp: 2, numLayerList: [15, 17] },
      { name: 'reshard', kind: 'convert', from: 'hf2mcore', tp: 8, pp: 1 },
      { name: 'mcore2hf', kind: 'convert', from: 'hf2mcore', to: 'hf' },
      { name: 'legacy2hf', kind: 'convert', from: 'hf2legacy', to: 'hf', lora: { load: '/tmp/lora', r: 8, alpha: 16 } },
    ]),
  );
  const stage = (name: string) => matrix.stages.find((s) => s.name === name)!;

  it('renders each direction with the flags of ModelLink convert scripts', () => {
    expect(text(stage('hf2mcore').argv)).toContain(
      '--use-mcore-models --model-type-hf llama2 --model-type GPT --load-model-type hf --save-model-type mg --target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 --load-dir /tmp/hf',
    );
    expect(text(stage('hf2mcore').argv)).toContain('--tokenizer-model /tmp/hf/tokenizer.model');
    expect(stage('hf2legacy').argv).not.toContain('--use-mcore-models');
    expect(text(stage('hf2legacy').argv)).toContain('--target-tensor-parallel-size 1 --target-pipeline-parallel-size 4');
    expect(text(stage('mcore2legacy').argv)).toContain('--use-mcore-models');
    expect(text(stage('mcore2legacy').argv)).toContain('--load-model-type mg --save-model-type mg --save-to-legacy');
    expect(text(stage('legacy2mcore').argv)).toContain('--load-from-legacy');
    expect(text(stage('legacy2mcore').argv)).toContain('--num-layer-list 15,17');
    expect(text(stage('reshard').argv)).toContain('--target-tensor-parallel-size 8 --target-pipeline-parallel-size 1');
    expect(text(stage('mcore2hf').argv)).toContain(
      '--load-model-type mg --save-model-type hf --target-tensor-parallel-size 1 --target-pipeline-parallel-size 1',
    );
    expect(text(stage('legacy2hf').argv)).toContain(
      '--lora-load /tmp/lora --lora-r 8 --lora-alpha 16 --lora-target-modules query_key_value dense dense_h_to_4h dense_4h_to_h',
    );
    expect(stage('mcore2hf').argv).not.toContain('--tokenizer-model');
  });

  it('records formats and layouts, and writes hf output beside links to the original model', () => {
    expect(stage('reshard').format).toEqual({ impl: 'mcore', tp: 8, pp: 1, ep: 1 });
    expect(stage('mcore2legacy').format).toEqual({ impl: 'legacy', tp: 2, pp: 2, ep: 1 });
    expect(stage('mcore2hf').outputKind).toBe('hf-model');
    expect(stage('mcore2hf').output).toBe('/tmp/ws/conv/mcore2hf/hf/mg2hf');
    expect(stage('mcore2hf').hfView).toEqual({ from: '/tmp/hf', dir: '/tmp/ws/conv/mcore2hf/hf' });
  });

  it('uses only flags the chosen loader/saver defines', () => {
    const combos = flagsJson.convert_ckpt_plugin_combinations;
    const hf = new Set(combos['--load-model-type hf'].flags.map((f) => f.flag));
    const mg = new Set(combos['--load-model-type mg'].flags.map((f) => f.flag));
    for (const s of matrix.stages) {
      const known = s.argv.includes('hf') && s.argv[s.argv.indexOf('--load-model-type') + 1] === 'hf' ? hf : mg;
      for (const [flag] of s.args) expect(known.has(flag), `${s.name}: ${flag}`).toBe(true);
    }
  });

  it('refuses to train on weights of another layout, and says which convert stage to add', () => {
    const r = planPipeline(
      convertSpec([
        { name: 'data', kind: 'preprocess', input: '/tmp/corpus.jsonl' },
        { name: 'weights', kind: 'convert', from: '/tmp/hf', tp: 8, pp: 1 },
        { name: 'pretrain', kind: 'pretrain', data: 'data', load: 'weights', trainIters: 10, saveInterval: 5, globalBatchSize: 8 },
      ]),
      { baseDir: '/tmp' },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => `${p.path}: ${p.message}`)).toContain(
      'stages[2].load: stage "weights" holds mcore weights at TP 8 PP 1, but this stage runs mcore at TP 2 PP 2: convert them first (a stage { kind: convert, from: weights, to: mcore, tp: 2, pp: 2 })',
    );
  });
});
