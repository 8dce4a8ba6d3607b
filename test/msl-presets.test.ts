/**
 * MindSpeed-LLM's model presets (issue 19): generated from each version's example scripts, usable as
 * `model.preset` on that version, every emitted flag in the version's parser, published rows traceable.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getFramework, type Framework } from '../frameworks/index.ts';
import { getMindspeedPreset, mindspeedPresetNames, mindspeedPresetVersions } from '../frameworks/mindspeed-llm/presets.ts';
import { getPreset, presetNames, type Impl, type Preset } from '../frameworks/modellink/presets.ts';
import { presetFor } from '../frameworks/presets.ts';
import { importScript } from '../import/import-script.ts';
import { planPipeline, type StagePlan } from '../plan/plan.ts';
import { parsedOf, type Example } from '../testkit/conformance.ts';
import { DEMO, EMULATOR, ROOT, type RawSpec } from '../testkit/specs.ts';

const readJson = (p: string) => JSON.parse(fs.readFileSync(p, 'utf8'));
const GENERATOR = path.join(ROOT, 'scripts', 'gen_msl_presets.py');
const PRESETS_JSON = path.join(ROOT, 'frameworks', 'mindspeed-llm', 'presets.json');

interface Script {
  script: string;
  args: [string, string | string[] | null][];
}
const examples = (version: string) =>
  readJson(path.join(ROOT, 'reference', 'mindspeed-llm', 'examples', `${version}.json`)) as { commit: string; scripts: Script[] };
const performance = readJson(path.join(ROOT, 'reference', 'mindspeed-llm', 'performance.json')) as {
  tables: { ref: string; commit: string; file: string; rows: { line: number; cells: string[] }[] }[];
};

const argOf = (version: string, script: string, flag: string) =>
  examples(version)
    .scripts.find((s) => s.script === script)
    ?.args.find(([f]) => f === flag)?.[1];

/**
 * Preprocess, pretrain from scratch and (without context parallelism, which variable-length fine-tuning
 * refuses) full fine-tuning, on the layout of the preset's canonical script. One departure: linkflow checks
 * core_r0.6's rule that EP divides the data-parallel size, which some core_v0.12.1 layouts (EP over
 * expert-tensor × expert-data groups) do not meet; there EP is cut to the largest divisor that does.
 */
function specFor(version: string, preset: Preset, impl: Impl = preset.impls[0]): RawSpec {
  const source = preset.sources.canonical[impl]!;
  const ref = preset.references.find((r) => r.script === source)!;
  const cp = ref.cp ?? 1;
  const dp = (ref.nodes * ref.devicesPerNode) / (ref.tp * ref.pp * cp);
  let ep = ref.ep ?? 1;
  while (dp % ep !== 0) ep--;
  const cpAlgo = argOf(version, source, '--context-parallel-algo');
  return {
    name: 'p',
    workspace: '/tmp/ws',
    modellink: { flavour: 'mindspeed-llm', version, root: EMULATOR, python: 'python3' },
    cluster: { nodes: ref.nodes, devicesPerNode: ref.devicesPerNode, ...(ref.nodes > 1 ? { masterAddr: '10.0.0.1' } : {}) },
    model: { preset: preset.name, impl, tokenizer: path.join(DEMO, 'hf-tiny') },
    parallel: {
      tp: ref.tp,
      pp: ref.pp,
      ep,
      cp,
      ...(typeof cpAlgo === 'string' ? { cpAlgo } : {}),
      ...(ref.numLayerList ? { numLayerList: ref.numLayerList } : {}),
    },
    stages: [
      { name: 'data', kind: 'preprocess', input: path.join(DEMO, 'corpus.jsonl') },
      { name: 'sft-data', kind: 'preprocess', input: path.join(DEMO, 'alpaca.jsonl'), handler: 'AlpacaStyleInstructionHandler', promptType: 'qwen' },
      { name: 'pretrain', kind: 'pretrain', data: 'data', trainIters: 10, saveInterval: 5, globalBatchSize: ref.globalBatchSize },
      ...(cp > 1
        ? []
        : [
            {
              name: 'finetune',
              kind: 'finetune',
              data: 'sft-data',
              load: 'pretrain',
              trainIters: 10,
              saveInterval: 5,
              globalBatchSize: ref.globalBatchSize,
              promptType: 'qwen',
            },
          ]),
    ],
  };
}

function plan(spec: RawSpec): StagePlan[] {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r.plan.stages;
}

const shapeOf = (s: StagePlan, preset: Preset, impl: Impl) => {
  const shape = new Set(preset.architectureArgs[impl]!.map(([f]) => f));
  return s.args.filter(([f]) => shape.has(f));
};

describe('MindSpeed-LLM presets', () => {
  it('are what scripts/gen_msl_presets.py generates from the reference, byte for byte', () => {
    const out = spawnSync('python3', [GENERATOR, '--stdout'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toBe(fs.readFileSync(PRESETS_JSON, 'utf8'));
    const check = spawnSync('python3', [GENERATOR, '--check'], { cwd: ROOT, encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
  });

  it('cover Qwen3 dense, Qwen3-MoE, DeepSeek-V3 and GLM-4.5 on 2.2.0, 2.3.0, 26.0.0 and 26.1.0', () => {
    expect(mindspeedPresetVersions()).toEqual(['1.0.0', '2.1.0', '2.2.0', '2.3.0', '26.0.0', '26.1.0']);
    // 26.1.0 renamed examples/mcore/glm45-moe to glm45-air (pretrain_glm45_air_106b_4k_A3_ptd.sh).
    const glm45 = (v: string) => (v === '26.1.0' ? 'glm45-air-106b' : 'glm45-moe-106b');
    for (const v of ['2.2.0', '2.3.0', '26.0.0', '26.1.0'])
      for (const id of ['qwen3-8b', 'qwen3-moe-30b-a3b', 'deepseek3-671b', glm45(v)]) expect(getMindspeedPreset(v, id), `${v} ${id}`).toBeDefined();
    const qwen3 = getMindspeedPreset('2.3.0', 'qwen3-8b')!.architecture;
    expect([qwen3.numLayers, qwen3.hiddenSize, qwen3.ffnHiddenSize, qwen3.numAttentionHeads, qwen3.numQueryGroups]).toEqual([36, 4096, 12288, 32, 8]);
    const moe = new Map(getMindspeedPreset('26.0.0', 'qwen3-moe-30b-a3b')!.architectureArgs.mcore!.map(([f, v]) => [f, v]));
    expect([moe.get('--num-experts'), moe.get('--moe-router-topk'), moe.get('--moe-ffn-hidden-size'), moe.has('--qk-layernorm')]).toEqual([
      '128',
      '8',
      '768',
      true,
    ]);
    const ds = new Map(getMindspeedPreset('26.0.0', 'deepseek3-671b')!.architectureArgs.mcore!.map(([f, v]) => [f, v]));
    expect([ds.get('--first-k-dense-replace'), ds.get('--n-shared-experts'), ds.get('--kv-lora-rank'), ds.has('--multi-latent-attention')]).toEqual([
      '3',
      '1',
      '512',
      true,
    ]);
  });

  it('record their version, commit and source script, and every architecture flag is the script’s own', () => {
    for (const v of mindspeedPresetVersions()) {
      const ex = examples(v);
      const byName = new Map(ex.scripts.map((s) => [s.script, s]));
      for (const name of mindspeedPresetNames(v)) {
        const p = getMindspeedPreset(v, name)!;
        expect(p.framework).toEqual({ flavour: 'mindspeed-llm', version: v, commit: ex.commit });
        const script = byName.get(p.source);
        expect(script, `${v} ${name}`).toBeDefined();
        // architectureArgs are a subsequence of the script's own arguments, in its order.
        expect(Object.keys(p.architectureArgs).sort(), `${v} ${name}`).toEqual([...p.impls].sort());
        for (const impl of p.impls) {
          const canonical = byName.get(p.sources.canonical[impl]!)!;
          expect(p.references.find((r) => r.script === canonical.script)?.impl, `${v} ${name} ${impl}`).toBe(impl);
          let at = 0;
          for (const a of p.architectureArgs[impl]!) {
            while (at < canonical.args.length && JSON.stringify(canonical.args[at]) !== JSON.stringify(a)) at++;
            expect(at, `${v} ${name} ${impl} ${a[0]}`).toBeLessThan(canonical.args.length);
            at++;
          }
        }
        for (const kind of ['pretrain', 'tune', 'dpo', 'convert', 'evaluate', 'generate', 'chat'] as const)
          for (const s of p.sources[kind]) expect(byName.has(s), `${v} ${name} ${s}`).toBe(true);
      }
    }
  });

  it('carry the published throughput rows of their scripts, with file, commit and line as performance.json has them', () => {
    const rows = mindspeedPresetVersions().flatMap((v) =>
      mindspeedPresetNames(v).flatMap((n) => getMindspeedPreset(v, n)!.published.map((r) => ({ v, n, r }))),
    );
    expect(rows.map(({ v, n, r }) => `${v} ${n} ${r.file}#L${r.line}`)).toEqual(
      expect.arrayContaining([
        '26.0.0 qwen3-8b docs/en/pytorch/features/README.md#L22',
        '26.0.0 qwen3-moe-30b-a3b docs/en/pytorch/features/README.md#L29',
        '26.0.0 deepseek3-671b docs/en/pytorch/features/README.md#L35',
        '26.1.0 qwen3-8b docs/en/pytorch/features/README.md#L26',
        '26.1.0 qwen3-32b docs/en/pytorch/features/README.md#L267',
        '2.3.0 llama2-7b README.md#L133',
        '2.1.0 llama2-7b README.md#L135',
        '2.1.0 mixtral-8x7b README.md#L154',
        '1.0.0 llama2-7b README.md#L72',
        // A legacy LoRA script's row (examples/legacy/llama2/tune_llama2_70b_lora_ptd.sh).
        '1.0.0 llama2-70b README.md#L334',
      ]),
    );
    for (const { v, n, r } of rows) {
      const tables = performance.tables.filter((t) => t.ref === r.ref && t.file === r.file && t.commit === r.commit);
      expect(tables.flatMap((t) => t.rows).find((x) => x.line === r.line)?.cells, `${v} ${n}`).toEqual(r.cells);
      expect(r.ref).toBe(v);
      expect(
        getMindspeedPreset(v, n)!.references.some((x) => x.script === r.script) || Object.values(getMindspeedPreset(v, n)!.sources).flat().includes(r.script!),
      ).toBe(true);
    }
  });

  for (const version of mindspeedPresetVersions())
    it(`every ${version} preset plans on MindSpeed-LLM ${version} in each of its implementations, with the script's shape and only flags the version defines`, () => {
      const framework: Framework = getFramework({ flavour: 'mindspeed-llm', version })!;
      const names = mindspeedPresetNames(version);
      expect(names.length).toBeGreaterThan(25);
      const failures: string[] = [];
      for (const name of names) {
        const preset = getMindspeedPreset(version, name)!;
        for (const impl of preset.impls) {
          let stages: StagePlan[];
          try {
            stages = plan(specFor(version, preset, impl));
          } catch (e) {
            failures.push(`${name} (${impl}): ${(e as Error).message}`);
            continue;
          }
          for (const s of stages) {
            const unknown = s.args.map(([f]) => f).filter((f) => !framework.isKnownFlag(s.entrypoint, f));
            if (unknown.length > 0) failures.push(`${name} (${impl}) ${s.name} (${s.entrypoint}): ${unknown.join(', ')}`);
          }
          const pretrain = stages.find((s) => s.name === 'pretrain')!;
          // The script's shape, verbatim and in its order, is what the pretrain stage passes; the model is the one asked for.
          expect(shapeOf(pretrain, preset, impl), `${name} (${impl})`).toEqual(preset.architectureArgs[impl]);
          expect(
            pretrain.args.some(([f]) => f === '--use-mcore-models'),
            `${name} (${impl})`,
          ).toBe(impl === 'mcore' && !framework.mcoreDefault);
        }
      }
      expect(failures).toEqual([]);
    });

  it('`linkflow presets` lists each version’s presets with the framework, version and published row', () => {
    // stdout to a file: bin/linkflow.js exits right after main(), which can cut output written to a pipe at 64 KiB.
    const cli = (...args: string[]) => {
      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'linkflow-msl-presets-')), 'out');
      const fd = fs.openSync(out, 'w');
      try {
        const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), 'presets', ...args], {
          cwd: ROOT,
          stdio: ['ignore', fd, 'pipe'],
          encoding: 'utf8',
        });
        return { status: r.status, stderr: r.stderr, stdout: fs.readFileSync(out, 'utf8') };
      } finally {
        fs.closeSync(fd);
      }
    };
    const r = cli('--flavour', 'mindspeed-llm', '--version', '26.0.0');
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^MindSpeed-LLM 26\.0\.0 \(examples at Ascend\/MindSpeed-LLM@4a035628; spec: modellink: \{ flavour: mindspeed-llm, version: 26\.0\.0 \}\)$/,
    );
    expect(lines.slice(1).map((l) => l.split(' ')[0])).toEqual(mindspeedPresetNames('26.0.0'));
    expect(lines.find((l) => l.startsWith('qwen3-8b '))).toMatch(
      /published docs\/en\/pytorch\/features\/README\.md#L22@4a035628: Qwen3 \/ 8B \/ Atlas 900 A3 SuperPoD \/ 1x16 \/ 7617\.002 \(Throughput \(Tokens\/s\)\)/,
    );
    // 1.0.0 lists its examples/legacy models too, as legacy presets.
    const v100 = cli('--flavour', 'mindspeed-llm', '--version', '1.0.0');
    expect(v100.status, v100.stderr).toBe(0);
    const v100Lines = v100.stdout.trimEnd().split('\n');
    expect(v100Lines[0]).toMatch(
      /^MindSpeed-LLM 1\.0\.0 \(examples at Ascend\/MindSpeed-LLM@cd34f028; spec: modellink: \{ flavour: mindspeed-llm, version: 1\.0\.0 \}\)$/,
    );
    expect(v100Lines.slice(1).map((l) => l.split(' ')[0])).toEqual(mindspeedPresetNames('1.0.0'));
    expect(v100Lines.find((l) => l.startsWith('aquila-7b '))).toMatch(/\(MindSpeed-LLM 1\.0\.0 examples\/legacy\/aquila\) \(legacy; reference 1x8 /);
    expect(v100Lines.find((l) => l.startsWith('llama2-70b '))).toMatch(
      /\(mcore, legacy; .*published README\.md#L85@cd34f028: .*; README\.md#L334@cd34f028: llama2-70B \/ Atlas 900 A2 PODc \/ 1x8 \/ MindSpeed LLM \+ NPU \/ LoRA \/ dynamic \/ 11\.72 samples\/s/,
    );
    expect(cli('--flavour', 'mindspeed-llm', '--version', '2.2.0').stdout).toMatch(/^MindSpeed-LLM 2\.2\.0 \(examples at Ascend\/MindSpeed-LLM@337813b0; /);
    expect(cli('--flavour', 'mindspeed-llm', '--version', '9.9.9').stderr).toMatch(
      /MindSpeed-LLM 9\.9\.9 has no generated presets; the versions with presets are 1\.0\.0, 2\.1\.0, 2\.2\.0, 2\.3\.0, 26\.0\.0, 26\.1\.0/,
    );
    const json = JSON.parse(cli('--flavour', 'mindspeed-llm', '--json').stdout) as Preset[];
    expect(json.filter((p) => p.framework?.version === '2.3.0').map((p) => p.name)).toEqual(mindspeedPresetNames('2.3.0'));
  });

  it('share ids with ModelLink’s zoo; the pipeline’s framework chooses which one a name means', () => {
    const shared = mindspeedPresetNames('2.3.0').filter((n) => presetNames().includes(n));
    expect(shared).toContain('llama2-7b');
    expect(presetFor('llama2-7b', { flavour: 'mindspeed-llm', version: '2.3.0' })!.framework?.version).toBe('2.3.0');
    expect(presetFor('llama2-7b', { flavour: 'modellink', version: 'x' })).toBe(getPreset('llama2-7b'));
    expect(presetFor('qwen3-8b', { flavour: 'modellink', version: 'x' })).toBeUndefined();
    // tiny (the demo's model) is ModelLink's only; MindSpeed-LLM pipelines keep it.
    expect(presetFor('tiny', { flavour: 'mindspeed-llm', version: '26.0.0' })).toBe(getPreset('tiny'));
    // 1.0.0 and 2.1.0 have their own (1.0.0's with the examples/legacy models as legacy presets); a name they lack is ModelLink's.
    expect(presetFor('llama2-7b', { flavour: 'mindspeed-llm', version: '1.0.0' })).toBe(getMindspeedPreset('1.0.0', 'llama2-7b'));
    expect(presetFor('aquila-7b', { flavour: 'mindspeed-llm', version: '1.0.0' })!.impls).toEqual(['legacy']);
    expect(presetFor('qwen3-8b', { flavour: 'mindspeed-llm', version: '2.1.0' })!.framework?.version).toBe('2.1.0');
    expect(presetFor('aquila-7b', { flavour: 'mindspeed-llm', version: '2.1.0' })).toBe(getPreset('aquila-7b'));
    expect(presetFor('tiny', { flavour: 'mindspeed-llm', version: '1.0.0' })).toBe(getPreset('tiny'));
    const onMsl = specFor('2.3.0', getMindspeedPreset('2.3.0', 'qwen3-8b')!);
    const r = planPipeline({ ...onMsl, modellink: { ...(onMsl.modellink as object), flavour: 'modellink', version: undefined } }, { baseDir: '/tmp' });
    expect(r.ok ? [] : r.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^unknown preset "qwen3-8b"; known presets: .*\(those of ModelLink /)]);
  });

  it('are what `linkflow import` matches a version’s script against, in the implementation the script builds', () => {
    const imported = (version: string, script: string) => {
      const e = (examples(version) as unknown as { scripts: Example[] }).scripts.find((x) => x.script === script)!;
      const r = importScript(parsedOf(e), {
        name: 'imported',
        root: '/opt/MindSpeed-LLM',
        scriptPath: script,
        framework: { flavour: 'mindspeed-llm', version },
      });
      const model = r.spec.model as { preset: string; impl: string };
      return { preset: presetFor(model.preset, r.framework), impl: model.impl };
    };
    // examples/legacy: the version's legacy preset, not ModelLink's.
    const legacy = imported('1.0.0', 'examples/legacy/llama2/pretrain_llama2_7b_ptd.sh');
    expect([legacy.preset?.name, legacy.preset?.framework?.version, legacy.impl]).toEqual(['llama2-7b', '1.0.0', 'legacy']);
    const onlyLegacy = imported('1.0.0', 'examples/legacy/aquila/pretrain_aquila_7b_ptd.sh');
    expect([onlyLegacy.preset?.name, onlyLegacy.preset?.framework?.version, onlyLegacy.impl]).toEqual(['aquila-7b', '1.0.0', 'legacy']);
    // Under examples/mcore but without --use-mcore-models: 1.0.0 builds a legacy model, and so do the preset's reference and the import.
    const unswitched = imported('1.0.0', 'examples/mcore/llama2/tune_llama2_13b_full_ptd.sh');
    expect([unswitched.preset?.name, unswitched.impl]).toEqual(['llama2-13b', 'legacy']);
    expect(unswitched.preset!.references.find((r) => r.script === 'examples/mcore/llama2/tune_llama2_13b_full_ptd.sh')?.impl).toBe('legacy');
    // A model no preset lists (R1-distilled LLaMA 70B has only tune scripts) takes a preset of its shape that has its
    // implementation: ModelLink's legacy-only intern-65b has the shape too, and would make an mcore script legacy.
    const distilled = imported('2.1.0', 'examples/mcore/deepseek_r1_distill_llama/tune_distill_llama_70b_full.sh');
    expect([distilled.impl, distilled.preset?.impls.includes('mcore'), distilled.preset?.architecture.numLayers]).toEqual(['mcore', true, 80]);
    const mcore = imported('2.1.0', 'examples/mcore/qwen3/pretrain_qwen3_8b_4K_ptd.sh');
    expect([mcore.preset?.name, mcore.preset?.framework?.version, mcore.impl]).toEqual(['qwen3-8b', '2.1.0', 'mcore']);
  });
});
