/** The model zoo: every preset traceable to ModelLink's example scripts and performance table. */
import { IMPLS } from '../spec/schema-parts.ts';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { architectureSchema } from '../spec/spec.ts';
import { customPreset, getPreset, presetNames, type Impl, type Preset } from '../frameworks/modellink/presets.ts';
import type { Arg } from '../frameworks/modellink/args.ts';
import { ROOT } from '../testkit/specs.ts';

const REFERENCE = path.join(ROOT, 'reference', 'modellink');
const readJson = (p: string) => JSON.parse(fs.readFileSync(p, 'utf8'));

interface Script {
  script: string;
  model_dir: string;
  impl: Impl;
  kind: string;
  kind_detail?: string;
  entrypoint: string;
  args: Arg[];
  distributed: { nnodes?: number; nproc_per_node?: number };
}
interface FlagRecord {
  flag: string;
  function: string;
  default: unknown;
}
interface PerfRow {
  model: string;
  size: string;
  seq_length: number;
  impl: Impl;
  nodes: number;
  devices_per_node: number;
  precision: string;
  tokens_per_s_per_device: number;
  reference_tokens_per_s_per_device: number | null;
}
interface Difference {
  model_dir: string;
  impl: Impl;
  flag: string;
  values: Record<string, string[]>;
}

const examples = readJson(path.join(REFERENCE, 'examples.json')) as { scripts: Script[]; cross_script_architecture_differences: Difference[] };
const flags = readJson(path.join(REFERENCE, 'flags.json')) as { entrypoints: Record<string, FlagRecord[]> };
const perf = readJson(path.join(REFERENCE, 'seed-performance.json')) as { rows: PerfRow[] };
const presetsFile = path.join(ROOT, 'frameworks', 'modellink', 'presets.json');
const presetsJson = readJson(presetsFile) as Record<string, Record<string, unknown>>;
const extraJson = readJson(path.join(ROOT, 'frameworks', 'modellink', 'presets-extra.json')) as Record<string, Record<string, unknown>>;
const scriptByName = new Map(examples.scripts.map((s) => [s.script, s]));

/**
 * `linkflow ...` with stdout to a file: bin/linkflow.js exits right after main(), which cuts output
 * written to a pipe at 64 KiB, and `presets --json` is larger than that.
 */
function linkflow(...args: string[]): string {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'linkflow-presets-')), 'out');
  const fd = fs.openSync(out, 'w');
  try {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), ...args], { cwd: ROOT, stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(out, 'utf8');
}

const all = (): Preset[] => presetNames().map((n) => getPreset(n)!);
/** Presets generated from the reference (hand-written ones have no canonical script). */
const generated = (): Preset[] => all().filter((p) => Object.keys(p.sources.canonical).length > 0);

/**
 * The model-shape flag set, written independently of scripts/gen_presets.py from the rule in
 * PRESETS.md: the flags of these parser functions, minus run settings, plus the architecture flags of
 * _add_moe_args, the tokenizer/vocabulary flags, and the named architecture flags of other functions.
 */
function architectureFlagSet(): Set<string> {
  const functions = new Set(['_add_network_size_args', '_add_network_args', '_add_mla_args', '_add_yarn_args', '_add_alibi_args', '_add_deepseek_moe_args']);
  const runSettings = new Set([
    '--use-fused-rmsnorm',
    '--use-fused-swiglu',
    '--use-fused-rotary-pos-emb',
    '--use-mc2',
    '--output-layer-slice-num',
    '--stage',
    '--seq-aux',
    '--moe-device-level-aux-loss-coeff',
    '--moe-comm-aux-loss-coeff',
  ]);
  const moe = [
    '--num-experts',
    '--moe-router-topk',
    '--moe-router-load-balancing-type',
    '--expert-interval',
    '--shared-expert-gate',
    '--shared-expert-gate-output-dimension',
    '--embedding-multiplier-scale',
    '--output-multiplier-scale',
    '--post-norm',
  ];
  const named: Record<string, string> = {
    '--tokenizer-type': '_add_data_args',
    '--vocab-size': '_add_data_args',
    '--make-vocab-size-divisible-by': '_add_network_size_args',
    '--padded-vocab-size': '_add_network_size_args',
    '--rotary-base': '_add_algorithm_args',
    '--rope-scaling-type': '_add_algorithm_args',
    '--low-freq-factor': '_add_algorithm_args',
    '--high-freq-factor': '_add_algorithm_args',
    '--original-max-position-embeddings': '_add_algorithm_args',
    '--disable-bias-linear': '_add_training_args',
    '--qk-layernorm': '_add_vision_args',
    '--scale-emb': '_add_training_args',
    '--scale-depth': '_add_training_args',
    '--dim-model-base': '_add_training_args',
  };
  const records = flags.entrypoints['pretrain_gpt.py'];
  const set = new Set<string>();
  for (const r of records) if (functions.has(r.function) && !runSettings.has(r.flag)) set.add(r.flag);
  for (const f of moe) {
    expect(
      records.some((r) => r.flag === f && r.function === '_add_moe_args'),
      `${f} in _add_moe_args`,
    ).toBe(true);
    set.add(f);
  }
  for (const [f, fn] of Object.entries(named)) {
    expect(
      records.some((r) => r.flag === f && r.function === fn),
      `${f} in ${fn}`,
    ).toBe(true);
    set.add(f);
  }
  return set;
}

const valueOf = (args: Arg[], flag: string): string | string[] | null | undefined => {
  const hits = args.filter(([f]) => f === flag);
  return hits.length ? hits[hits.length - 1][1] : undefined;
};
const has = (args: Arg[], flag: string) => args.some(([f]) => f === flag);
const intOf = (v: unknown) => Math.trunc(Number(v));
const primaryImpl = (p: Preset): Impl => p.reference.impl ?? p.impls[0];

describe('model presets', () => {
  it('map every row of the performance table to exactly one preset, listed by `linkflow presets`', () => {
    expect(perf.rows).toHaveLength(45);
    const listed = JSON.parse(linkflow('presets', '--json')) as Preset[];
    const listedNames = new Set(listed.map((p) => p.name));
    const lines = linkflow('presets', '--flavour', 'modellink').trimEnd().split('\n');
    expect(lines.map((l) => l.split(' ')[0])).toEqual(presetNames());
    const total = all().reduce((n, p) => n + p.table.length, 0);
    expect(total).toBe(45);
    for (const row of perf.rows) {
      const owners = all().filter((p) =>
        p.table.some(
          (t) =>
            t.model === row.model &&
            t.size === row.size &&
            t.seqLength === row.seq_length &&
            t.impl === row.impl &&
            t.nodes === row.nodes &&
            t.devicesPerNode === row.devices_per_node &&
            t.precision === row.precision &&
            t.tokensPerSecondPerDevice === row.tokens_per_s_per_device &&
            t.referenceTokensPerSecondPerDevice === row.reference_tokens_per_s_per_device,
        ),
      );
      expect(
        owners.map((p) => p.name),
        `${row.model} ${row.size} seq ${row.seq_length}`,
      ).toHaveLength(1);
      const p = owners[0];
      expect(listedNames.has(p.name)).toBe(true);
      expect(p.impls).toContain(row.impl);
      // the row's model and size name the preset (modulo the aliases documented in PRESETS.md)
      const family = row.model
        .toLowerCase()
        .replace('.', '')
        .replace(/^internlm$/, 'intern');
      expect(p.name.startsWith(`${family}-`), `${row.model} → ${p.name}`).toBe(true);
      // the reference carries the table's figure for the canonical sequence length
      if (row.impl === p.reference.impl && row.seq_length === p.architecture.seqLength)
        expect(p.reference.tokensPerSecondPerDevice).toBe(row.tokens_per_s_per_device);
    }
    expect(getPreset('grok1-40b')!.table.map((t) => t.size)).toEqual(['8x5B']);
    expect(getPreset('bloom-7b')!.table.map((t) => t.size)).toEqual(['7B1']);
    expect(getPreset('chatglm3-6b')!.table.map((t) => t.seqLength)).toEqual([8192, 32768, 65536]);
  });

  it('parse, and presets.json holds exactly the parsed presets (hand-written ones merged unchanged)', () => {
    expect(presetNames()).toEqual(Object.keys(presetsJson).sort());
    for (const p of all()) {
      expect(architectureSchema.safeParse(p.architecture).success, p.name).toBe(true);
      expect(p.impls.length).toBeGreaterThan(0);
      for (const impl of p.impls) expect(p.architectureArgs[impl]?.length, `${p.name} ${impl}`).toBeGreaterThan(0);
      for (const impl of IMPLS) if (!p.impls.includes(impl)) expect(p.architectureArgs[impl]).toBeUndefined();
      expect(p.complete).toBe(p.gaps.length === 0);
    }
    for (const [name, preset] of Object.entries(extraJson)) expect(presetsJson[name]).toEqual(preset);
    expect(extraJson.tiny).toBeDefined();
    expect(getPreset('tiny')!.architectureArgs.mcore).toEqual(customPreset(getPreset('tiny')!.architecture).architectureArgs.mcore);
  });

  it('take architectureArgs verbatim from the canonical script: its model-shape flags in script order', () => {
    const shape = architectureFlagSet();
    expect(shape.has('--num-layers') && shape.has('--rotary-base') && shape.has('--num-experts')).toBe(true);
    for (const excluded of [
      '--seq-length',
      '--use-fused-rmsnorm',
      '--use-mc2',
      '--tensor-model-parallel-size',
      '--expert-model-parallel-size',
      '--moe-aux-loss-coeff',
      '--use-flash-attn',
      '--bf16',
    ])
      expect(shape.has(excluded), excluded).toBe(false);
    for (const p of generated()) {
      expect(Object.keys(p.sources.canonical).sort()).toEqual([...p.impls].sort());
      for (const impl of p.impls) {
        const name = p.sources.canonical[impl]!;
        const script = scriptByName.get(name)!;
        expect(script, name).toBeDefined();
        expect([script.kind, script.impl, script.entrypoint]).toEqual(['pretrain', impl, 'pretrain_gpt.py']);
        expect(p.sources.pretrain).toContain(name);
        expect(p.architectureArgs[impl], `${p.name} ${impl}`).toEqual(script.args.filter(([f]) => shape.has(f)));
        // the canonical script is the shortest-context pretrain script of that implementation
        const seqs = p.sources.pretrain
          .map((s) => scriptByName.get(s)!)
          .filter((s) => s.impl === impl)
          .map((s) => intOf(valueOf(s.args, '--seq-length')));
        expect(intOf(valueOf(script.args, '--seq-length'))).toBe(Math.min(...seqs));
      }
    }
  });

  it('use only flags that pretrain_gpt.py, evaluation.py and inference.py define', () => {
    const defined = (entry: string) => new Set(flags.entrypoints[entry].map((r) => r.flag));
    const entries = ['pretrain_gpt.py', 'evaluation.py', 'inference.py'].map((e) => [e, defined(e)] as const);
    const missing: string[] = [];
    for (const p of all())
      for (const args of Object.values(p.architectureArgs))
        for (const [f] of args!) for (const [e, names] of entries) if (!names.has(f)) missing.push(`${p.name}: ${e} ${f}`);
    expect(missing).toEqual([]);
  });

  it('keep the typed architecture equal to architectureArgs of the preferred implementation', () => {
    const defaults = new Map(flags.entrypoints['pretrain_gpt.py'].map((r) => [r.flag, r.default]));
    for (const p of all()) {
      const a = p.architecture;
      const args = p.architectureArgs[primaryImpl(p)]!;
      const ctx = p.name;
      expect(a.numLayers, ctx).toBe(intOf(valueOf(args, '--num-layers')));
      expect(a.hiddenSize, ctx).toBe(intOf(valueOf(args, '--hidden-size')));
      expect(a.numAttentionHeads, ctx).toBe(intOf(valueOf(args, '--num-attention-heads')));
      if (has(args, '--ffn-hidden-size')) expect(a.ffnHiddenSize, ctx).toBe(intOf(valueOf(args, '--ffn-hidden-size')));
      else expect(a.ffnHiddenSize, ctx).toBe(a.swiglu ? Math.floor((4 * a.hiddenSize * 2) / 3 / 64) * 64 : 4 * a.hiddenSize);
      expect(a.numQueryGroups, ctx).toBe(
        has(args, '--group-query-attention') ? intOf(valueOf(args, '--num-query-groups') ?? defaults.get('--num-query-groups')) : undefined,
      );
      expect(a.maxPositionEmbeddings, ctx).toBe(intOf(valueOf(args, '--max-position-embeddings')));
      expect(a.vocabSize, ctx).toBe(has(args, '--vocab-size') ? intOf(valueOf(args, '--vocab-size')) : undefined);
      expect(a.makeVocabSizeDivisibleBy, ctx).toBe(intOf(valueOf(args, '--make-vocab-size-divisible-by') ?? defaults.get('--make-vocab-size-divisible-by')));
      expect(a.positionEmbeddingType, ctx).toBe(valueOf(args, '--position-embedding-type') ?? defaults.get('--position-embedding-type'));
      expect(a.normalization, ctx).toBe(valueOf(args, '--normalization') ?? defaults.get('--normalization'));
      expect(a.normEpsilon, ctx).toBe(has(args, '--norm-epsilon') ? Number(valueOf(args, '--norm-epsilon')) : undefined);
      expect(a.rotaryBase, ctx).toBe(has(args, '--rotary-base') ? Number(valueOf(args, '--rotary-base')) : undefined);
      expect(a.swiglu, ctx).toBe(has(args, '--swiglu'));
      expect(a.untieEmbeddingsAndOutputWeights, ctx).toBe(has(args, '--untie-embeddings-and-output-weights'));
      expect(a.disableBiasLinear, ctx).toBe(has(args, '--disable-bias-linear'));
      expect(a.tokenizerType, ctx).toBe(valueOf(args, '--tokenizer-type'));
      if (p.hfModelType) expect(a.hfModelType, ctx).toBe(p.hfModelType);
      else expect(a.hfModelType, ctx).toBe('llama2');
    }
    for (const p of generated()) {
      const canon = scriptByName.get(p.sources.canonical[primaryImpl(p)]!)!;
      expect(p.architecture.seqLength, p.name).toBe(intOf(valueOf(canon.args, '--seq-length')));
      expect(p.reference.script).toBe(canon.script);
      expect([p.reference.tp, p.reference.pp]).toEqual([
        intOf(valueOf(canon.args, '--tensor-model-parallel-size')),
        intOf(valueOf(canon.args, '--pipeline-model-parallel-size')),
      ]);
      expect(p.fused).toEqual({
        rmsnorm: has(canon.args, '--use-fused-rmsnorm'),
        swiglu: has(canon.args, '--use-fused-swiglu'),
        rotaryPosEmb: has(canon.args, '--use-fused-rotary-pos-emb'),
        flashAttn: has(canon.args, '--use-flash-attn'),
      });
    }
  });

  it('list one reference per pretrain/tune/DPO script, with the script layout', () => {
    for (const p of generated()) {
      const training = [...p.sources.pretrain, ...p.sources.tune, ...p.sources.dpo].sort();
      expect(p.references.map((r) => r.script).sort(), p.name).toEqual(training);
      for (const r of p.references) {
        const s = scriptByName.get(r.script)!;
        expect([r.tp, r.pp, r.seqLength, r.globalBatchSize], r.script).toEqual(
          ['--tensor-model-parallel-size', '--pipeline-model-parallel-size', '--seq-length', '--global-batch-size'].map((f) => intOf(valueOf(s.args, f))),
        );
        expect(r.cp).toBe(has(s.args, '--context-parallel-size') ? intOf(valueOf(s.args, '--context-parallel-size')) : undefined);
        expect(r.ep).toBe(has(s.args, '--expert-model-parallel-size') ? intOf(valueOf(s.args, '--expert-model-parallel-size')) : undefined);
        expect([r.nodes, r.devicesPerNode]).toEqual([s.distributed.nnodes, s.distributed.nproc_per_node]);
        expect(r.precision).toBe(has(s.args, '--bf16') ? 'bf16' : has(s.args, '--fp16') ? 'fp16' : 'fp32');
      }
    }
  });

  it("record a decision for each of the reference's cross-script architecture differences", () => {
    const diffs = examples.cross_script_architecture_differences;
    expect(diffs).toHaveLength(78);
    for (const d of diffs) {
      const listed = Object.values(d.values).flat();
      const owners = generated().filter((p) =>
        listed.every((s) =>
          Object.values(p.sources)
            .flat()
            .includes(s as never),
        ),
      );
      expect(
        owners.map((p) => p.name),
        `${d.model_dir} ${d.flag}`,
      ).toHaveLength(1);
      const decision = owners[0].decisions.filter((x) => x.startsWith(`${d.flag} (${d.impl})`));
      expect(decision, `${owners[0].name} ${d.flag}`).toHaveLength(1);
      // the chosen value is the canonical script's: the group holding the canonical script
      const canonical = owners[0].sources.canonical[d.impl]!;
      expect(Object.values(d.values).some((ss) => ss.includes(canonical))).toBe(true);
    }
  });

  it('have unique, stable, lowercase ids derived from the example script names', () => {
    const raw = fs.readFileSync(presetsFile, 'utf8');
    const topLevel = [...raw.matchAll(/^ {2}"([^"]+)": \{/gm)].map((m) => m[1]);
    expect(new Set(topLevel).size).toBe(topLevel.length);
    expect(topLevel).toEqual(presetNames());
    for (const name of presetNames()) expect(name).toMatch(/^[a-z0-9][a-z0-9.-]*$/);
    expect(presetNames()).toEqual([
      'aquila-7b',
      'aquila2-34b',
      'aquila2-7b',
      'baichuan-13b',
      'baichuan-7b',
      'baichuan2-13b',
      'baichuan2-7b',
      'bloom-176b',
      'bloom-7b',
      'chatglm3-6b',
      'codellama-34b',
      'codeqwen-7b',
      'deepseek2',
      'deepseek2-100b',
      'deepseek2-60b',
      'deepseek2-coder',
      'deepseek2-lite-16b',
      'gemma-2b',
      'gemma-7b',
      'gemma2-27b',
      'gemma2-9b',
      'glm4-9b',
      'gpt3-15b',
      'gpt3-175b',
      'gpt4-moe-drop',
      'gpt4-moe-dropless',
      'grok1-40b',
      'intern-65b',
      'intern-7b',
      'internlm2-20b',
      'llama-13b',
      'llama-33b',
      'llama-65b',
      'llama-7b',
      'llama2-13b',
      'llama2-34b',
      'llama2-70b',
      'llama2-7b',
      'llama3-70b',
      'llama3-8b',
      'llama31-200b',
      'llama31-405b',
      'llama31-50b',
      'llama31-70b',
      'llama31-8b',
      'minicpm-2b',
      'minicpm-8x2b',
      'mistral-7b',
      'mixtral-8x22b',
      'mixtral-8x7b',
      'qwen-14b',
      'qwen-72b',
      'qwen-7b',
      'qwen15-0point5b',
      'qwen15-110b',
      'qwen15-14b',
      'qwen15-1point8b',
      'qwen15-32b',
      'qwen15-4b',
      'qwen15-72b',
      'qwen15-7b',
      'qwen2-0point5b',
      'qwen2-1point5b',
      'qwen2-72b',
      'qwen2-7b',
      'qwen2-moe-57b-a14b',
      'tiny',
      'yi-34b',
    ]);
    // the size part of an id is the size token of its canonical script's file name
    for (const p of generated()) {
      const file = path.basename(Object.values(p.sources.canonical)[0]!).toLowerCase();
      const size = /_(\d+(?:point\d+)?b|\d+x\d+b)(?:_(a\d+b))?(?=_|\.sh$)/.exec(file);
      if (size) expect(p.name.endsWith(`-${size[1]}${size[2] ? `-${size[2]}` : ''}`), `${p.name} from ${file}`).toBe(true);
    }
  });

  it('keep llama2-7b as the commands and CLI tests know it', () => {
    const p = getPreset('llama2-7b')!;
    expect(p.impls).toEqual(['mcore', 'legacy']);
    expect(p.architecture).toMatchObject({ numLayers: 32, hiddenSize: 4096, numAttentionHeads: 32, tokenizerType: 'Llama2Tokenizer' });
    expect(p.reference).toMatchObject({
      impl: 'mcore',
      tp: 1,
      pp: 2,
      microBatchSize: 1,
      globalBatchSize: 256,
      precision: 'bf16',
      tokensPerSecondPerDevice: 4672,
    });
    expect(p.sources.canonical.mcore).toBe('examples/mcore/llama2/pretrain_llama2_7b_ptd.sh');
    expect(p.legacyLoader).toBe('llama2_hf');
    expect(p.hfModelType).toBe('llama2');
  });

  it('are what scripts/gen_presets.py generates from the reference today', () => {
    const r = spawnSync('python3', [path.join(ROOT, 'scripts', 'gen_presets.py'), '--check', REFERENCE], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
