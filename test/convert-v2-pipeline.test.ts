/**
 * convert_ckpt_v2.py end to end on MindSpeed-LLM 2.3.0 and 26.0.0 (the emulator's roots/mindspeed-llm-<v>), on a
 * real Temporal dev server: a tiny qwen3-shaped model (model.architecture with hfModelType qwen3, which v2 knows)
 * converted HF → mcore with v2, trained a few iterations, and exported mcore → HF with v2 straight into --save-dir.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO, EMULATOR, onFramework, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

/** The demo's tiny HF model, declared a Qwen3 (config.json's model_type and architectures). */
function qwen3Model(dir: string): string {
  const hf = path.join(dir, 'hf-qwen3');
  fs.cpSync(path.join(DEMO, 'hf-tiny'), hf, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(hf, 'config.json'), JSON.stringify({ ...config, model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'] }, null, 1));
  return hf;
}

function argvOf(logFile: string): string[] {
  return JSON.parse(/^# argv: (.*)$/m.exec(fs.readFileSync(logFile, 'utf8'))![1]) as string[];
}

describe('convert_ckpt_v2.py on MindSpeed-LLM', () => {
  it.each(['2.3.0', '26.0.0'])('%s converts a qwen3 model HF → mcore, trains it, and exports it back to HF with v2', async (version) => {
    const dir = tempDir(`msl-v2-${version}`);
    const hf = qwen3Model(dir);
    const originalConfig = fs.readFileSync(path.join(hf, 'config.json'), 'utf8');
    const spec: RawSpec = onFramework(
      {
        name: 'msl-v2',
        workspace: path.join(dir, 'ws'),
        modellink: { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun'), env: { MLEMU_ITER_TIME_MS: '15' } },
        cluster: { nodes: 1, devicesPerNode: 1 },
        model: {
          architecture: {
            numLayers: 2,
            hiddenSize: 64,
            ffnHiddenSize: 172,
            numAttentionHeads: 4,
            maxPositionEmbeddings: 256,
            seqLength: 256,
            vocabSize: 1000,
            hfModelType: 'qwen3',
          },
          tokenizer: hf,
        },
        parallel: { tp: 1, pp: 1 },
        stages: [
          { name: 'data', kind: 'preprocess', input: path.join(DEMO, 'corpus.jsonl') },
          { name: 'weights', kind: 'convert', from: hf },
          { name: 'pretrain', kind: 'pretrain', data: 'data', load: 'weights', trainIters: 10, saveInterval: 5, globalBatchSize: 8 },
          { name: 'export', kind: 'convert', from: 'pretrain', to: 'hf', hfDir: hf },
        ],
      },
      'mindspeed-llm',
      version,
      path.join(EMULATOR, 'roots', `mindspeed-llm-${version}`),
    );
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    for (const name of ['weights', 'export']) {
      const stage = state.stages.find((s) => s.name === name)!;
      const argv = argvOf(stage.attempts.at(-1)!.logFile!);
      expect(argv).toEqual(expect.arrayContaining(['convert_ckpt_v2.py', '--model-type-hf', 'qwen3']));
      expect(argv).not.toContain('--model-type');
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'ws', 'msl-v2', name, 'manifest.json'), 'utf8'));
      expect(manifest).toMatchObject({ framework: { flavour: 'mindspeed-llm', version }, converter: 'convert_ckpt_v2.py' });
    }
    const weights = state.stages.find((s) => s.name === 'weights')!;
    expect(fs.readFileSync(path.join(weights.output, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('1');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.finalIteration).toBe(10);
    // v2 writes the safetensors straight into --save-dir (no mg2hf/), beside links to the original's tokenizer.
    const exported = state.stages.find((s) => s.name === 'export')!;
    expect(exported.output).toMatch(/export\/hf$/);
    const files = fs.readdirSync(exported.output);
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{6}\.safetensors$/.test(f))).toHaveLength(2);
    expect(files).not.toContain('mg2hf');
    expect(files).toContain('tokenizer.json');
    const configStat = fs.lstatSync(path.join(exported.output, 'config.json'));
    if (version === '2.3.0') {
      // 2.3.0's v2 writes no config.json and has no --hf-cfg-dir: the export's is a link to the original.
      expect(configStat.isSymbolicLink()).toBe(true);
    } else {
      // 26.0.0's copies the original's config and tokenizer files from --hf-cfg-dir (convert_mg2hf.py#L195-217),
      // into files of its own: the view links none of them, so nothing is written through a link into the original.
      const argv = argvOf(exported.attempts.at(-1)!.logFile!);
      expect(argv[argv.indexOf('--hf-cfg-dir') + 1]).toBe(hf);
      expect(configStat.isFile()).toBe(true);
      expect(fs.readFileSync(path.join(exported.output, 'config.json'), 'utf8')).toBe(originalConfig);
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) expect(fs.lstatSync(path.join(exported.output, f)).isFile(), f).toBe(true);
    }
    // The conversion left the original as it was.
    expect(JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'qwen3', num_hidden_layers: 2 });
    expect(fs.readFileSync(path.join(hf, 'config.json'), 'utf8')).toBe(originalConfig);
    const index = JSON.parse(fs.readFileSync(path.join(exported.output, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map)).toHaveLength(2);
  });
});
