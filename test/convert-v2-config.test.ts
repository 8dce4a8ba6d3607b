/**
 * An export to HF with convert_ckpt_v2.py gets the original model's config and tokenizer files without writing
 * into the original: 26.0.0 is given --hf-cfg-dir and copies them itself (so the stage's view leaves them out),
 * 2.3.0 has no such flag and the view links them. Plans and real directories only, no Temporal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { linkHfView, linksEntry } from '../activities/attempt/hf-view.ts';
import { getFramework } from '../frameworks/index.ts';
import { planPipeline, type StagePlan } from '../plan/plan.ts';
import { DEMO, EMULATOR, onFramework, tempDir, type RawSpec } from '../testkit/specs.ts';

function qwen3Spec(version: string, hf: string): RawSpec {
  return onFramework(
    {
      name: 'v2cfg',
      workspace: '/tmp/ws',
      modellink: { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun') },
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
  );
}

function exportStage(version: string, hf: string): StagePlan {
  const r = planPipeline(qwen3Spec(version, hf), { baseDir: '/tmp' });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r.plan.stages.find((s) => s.name === 'export')!;
}

const value = (s: StagePlan, flag: string) => s.args.find(([f]) => f === flag)?.[1];

describe('convert_ckpt_v2.py mg → hf and the original HF model’s config', () => {
  const hf = path.join(DEMO, 'hf-tiny');

  // 26.1.0's copy_hf_cfg is 26.0.0's (convert_mg2hf.py#L170-180, #L210-232).
  it.each(['26.0.0', '26.1.0'])(
    '%s: passes --hf-cfg-dir (the original HF model), a flag of its parser; the view leaves the files it copies to it',
    (version) => {
      const stage = exportStage(version, hf);
      expect(stage.entrypoint).toBe('convert_ckpt_v2.py');
      expect(value(stage, '--hf-cfg-dir')).toBe(hf);
      expect(getFramework({ flavour: 'mindspeed-llm', version })!.isKnownFlag('convert_ckpt_v2.py', '--hf-cfg-dir')).toBe(true);
      expect(stage.hfView).toMatchObject({ from: hf, weights: false, configCopied: true });
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'merges.txt', 'chat_template.jinja'])
        expect(linksEntry(stage.hfView!, f), f).toBe(false);
      expect(linksEntry(stage.hfView!, 'README.md')).toBe(true);
      expect(linksEntry(stage.hfView!, 'model-00001-of-00002.safetensors')).toBe(false);
    },
  );

  it.each(['2.2.0', '2.3.0'])('%s: has no --hf-cfg-dir (it copies nothing), so the view links the config and tokenizer', (version) => {
    const stage = exportStage(version, hf);
    expect(stage.entrypoint).toBe('convert_ckpt_v2.py');
    expect(stage.args.map(([f]) => f)).not.toContain('--hf-cfg-dir');
    expect(getFramework({ flavour: 'mindspeed-llm', version })!.isKnownFlag('convert_ckpt_v2.py', '--hf-cfg-dir')).toBe(false);
    expect(stage.hfView?.configCopied).toBeUndefined();
    expect(linksEntry(stage.hfView!, 'config.json')).toBe(true);
    expect(linksEntry(stage.hfView!, 'model.safetensors.index.json')).toBe(false);
  });

  it('a view made by an earlier plan loses its links where the converter now writes; their targets stay', () => {
    const dir = tempDir('hf-view');
    const original = path.join(dir, 'hf');
    fs.cpSync(hf, original, { recursive: true });
    const before = fs.readFileSync(path.join(original, 'config.json'), 'utf8');
    const out = path.join(dir, 'export', 'hf');
    linkHfView({ from: original, dir: out, weights: false });
    expect(fs.lstatSync(path.join(out, 'config.json')).isSymbolicLink()).toBe(true);
    linkHfView({ from: original, dir: out, weights: false, configCopied: true });
    expect(fs.existsSync(path.join(out, 'config.json'))).toBe(false);
    expect(fs.readFileSync(path.join(original, 'config.json'), 'utf8')).toBe(before);
    // A file of its own in the output (the converter's copy) is never removed.
    fs.writeFileSync(path.join(out, 'config.json'), before);
    linkHfView({ from: original, dir: out, weights: false, configCopied: true });
    expect(fs.lstatSync(path.join(out, 'config.json')).isFile()).toBe(true);
  });
});
