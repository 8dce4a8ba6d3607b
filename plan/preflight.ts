/**
 * Checks that catch a first hour's mistakes before anything runs, as plain functions (the reading of
 * files is client/preflight.ts's, on this machine, and activities/preflight.ts's, on a node):
 * shell variables `linkflow import` could not fill, a stage reference that is neither a stage nor a
 * path, HuggingFace weights of another model than the preset, and training stages that `stop`
 * cannot make save.
 */
import type { Architecture, SpecProblem } from '../spec/spec.ts';
import type { PipelinePlan, StagePlan } from './types.ts';

const SHELL_VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Every string of the raw spec holding a shell variable (`${DATA_PATH}`, `$CKPT_LOAD_DIR`), with its path: all of them at once. */
export function unfilledVariables(raw: unknown, at = ''): SpecProblem[] {
  if (typeof raw === 'string') {
    const names = [...raw.matchAll(SHELL_VARIABLE)].map((m) => m[1] ?? m[2]);
    if (names.length === 0) return [];
    const list = [...new Set(names)].map((n) => `\${${n}}`).join(', ');
    return [
      {
        path: at || '(top level)',
        message: `${list} is a shell variable left as written (\`linkflow import\` keeps a script's placeholders such as DATA_PATH="your data path"): replace it with the real value`,
      },
    ];
  }
  if (Array.isArray(raw)) return raw.flatMap((v, i) => unfilledVariables(v, `${at}[${i}]`));
  if (raw && typeof raw === 'object') return Object.entries(raw as Record<string, unknown>).flatMap(([k, v]) => unfilledVariables(v, at ? `${at}.${k}` : k));
  return [];
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = up;
    }
  }
  return row[b.length];
}

/** The stage a mistyped reference most likely meant: close in spelling, or the only earlier stage whose output fits. */
export function didYouMean(value: string, candidates: string[]): string | undefined {
  const word = value.replace(/^\.\//, '').replace(/\/+$/, '');
  let best: { name: string; d: number } | undefined;
  for (const name of candidates) {
    const d = distance(word.toLowerCase(), name.toLowerCase());
    if (d <= Math.max(2, Math.floor(name.length / 3)) && (!best || d < best.d)) best = { name, d };
  }
  return best?.name ?? (candidates.length === 1 && !word.includes('/') ? candidates[0] : undefined);
}

/** The output kinds each reference field can take from an earlier stage. */
const FITS: Record<string, (stage: StagePlan) => boolean> = {
  data: (s) => s.kind === 'preprocess',
  load: (s) => s.outputKind === 'checkpoint',
  loraLoad: (s) => s.outputKind === 'checkpoint' && (s.training?.lora ?? false),
  from: (s) => s.outputKind === 'checkpoint' || s.outputKind === 'hf-model',
};

/**
 * A reference (data, load, loraLoad, from) that names no stage and no path that exists: `exists`
 * answers for this machine. One that looks like a stage name (a bare word, or close to an earlier
 * stage's name) is an error naming the stage it probably meant; a path missing only here may exist on
 * the nodes (a warning: `validate --on-node` checks it there).
 */
export function danglingReferences(
  plan: PipelinePlan,
  rawValue: (specPath: string) => unknown,
  exists: (p: string) => boolean,
): { errors: SpecProblem[]; warnings: SpecProblem[] } {
  const errors: SpecProblem[] = [];
  const warnings: SpecProblem[] = [];
  plan.stages.forEach((stage, index) => {
    for (const input of stage.inputs) {
      const field = input.specPath.split('.').at(-1) ?? '';
      const fits = FITS[field];
      if (!fits || input.fromStage || exists(input.path)) continue;
      const value = rawValue(input.specPath);
      if (typeof value !== 'string') continue;
      const earlier = plan.stages.slice(0, index).filter(fits);
      const guess = didYouMean(
        value,
        earlier.map((s) => s.name),
      );
      if (!guess && value.includes('/')) {
        warnings.push({
          path: input.specPath,
          message: `${input.path} does not exist on this machine (\`linkflow validate --on-node NAME\` checks it where the stage runs)`,
        });
        continue;
      }
      const stages = earlier.length ? `the earlier stages it can take are ${earlier.map((s) => `\`${s.name}\``).join(', ')}` : 'no earlier stage produces it';
      errors.push({
        path: input.specPath,
        message: `"${value}" is neither a stage nor an existing path (${input.path})${guess ? `: did you mean \`${guess}\`?` : `; ${stages}`}`,
      });
    }
  });
  return { errors, warnings };
}

/** What a HuggingFace config.json says of the model, under the names of the common model types. */
export function hfDimensions(config: Record<string, unknown>): {
  numLayers?: number;
  hiddenSize?: number;
  numAttentionHeads?: number;
  numQueryGroups?: number;
  vocabSize?: number;
} {
  const num = (...keys: string[]) => {
    for (const k of keys) if (typeof config[k] === 'number') return config[k];
    return undefined;
  };
  return {
    numLayers: num('num_hidden_layers', 'num_layers', 'n_layer'),
    hiddenSize: num('hidden_size', 'n_embd'),
    numAttentionHeads: num('num_attention_heads', 'n_head'),
    numQueryGroups: num('num_key_value_heads', 'multi_query_group_num'),
    vocabSize: num('vocab_size', 'padded_vocab_size'),
  };
}

/**
 * Where a HF model's config.json disagrees with the architecture the pipeline trains: convert_ckpt.py
 * would fail (or, worse, write weights of the wrong shape) only after hours of loading on real weights.
 * `vocabSize`: the architecture's, else --vocab-size/--padded-vocab-size of the stage's args.
 */
export function hfConfigMismatches(
  specPath: string,
  configFile: string,
  config: Record<string, unknown>,
  arch: Pick<Architecture, 'numLayers' | 'hiddenSize' | 'numAttentionHeads' | 'numQueryGroups' | 'vocabSize'>,
  model: string,
): SpecProblem[] {
  const hf = hfDimensions(config);
  const rows: [string, string, number | undefined, number | undefined][] = [
    ['layers', 'num_hidden_layers', hf.numLayers, arch.numLayers],
    ['hidden size', 'hidden_size', hf.hiddenSize, arch.hiddenSize],
    ['attention heads', 'num_attention_heads', hf.numAttentionHeads, arch.numAttentionHeads],
    [
      'query groups',
      'num_key_value_heads',
      hf.numQueryGroups,
      arch.numQueryGroups ?? (hf.numQueryGroups === hf.numAttentionHeads ? hf.numQueryGroups : undefined),
    ],
    ['vocabulary', 'vocab_size', hf.vocabSize, arch.vocabSize],
  ];
  const wrong = rows.filter(([, , got, want]) => got !== undefined && want !== undefined && got !== want);
  if (wrong.length === 0) return [];
  return [
    {
      path: specPath,
      message: `${configFile} is not a ${model}: ${wrong.map(([what, key, got, want]) => `${what} ${got} (${key}), ${model} has ${want}`).join('; ')}. Point it at the right weights, or choose the preset (or model.architecture) of these`,
    },
  ];
}

/** Training stages whose trainer does not save on SIGTERM, so `linkflow stop` cannot checkpoint them. */
export function stagesWithoutExitHandler(plan: PipelinePlan): SpecProblem[] {
  return plan.stages
    .filter((s) => s.training && !s.training.measureOnly && !s.argv.includes('--exit-signal-handler'))
    .map((s) => ({
      path: s.specPath,
      message: `stage ${s.name} runs without --exit-signal-handler (exitSignalHandler: false; \`linkflow import\` writes it for a script lacking the flag): on SIGTERM its trainer exits without saving. \`linkflow stop\` then waits for its next save (every ${s.training!.saveInterval} iterations) before stopping it, or with --now stops at once and loses the iterations since; a node drain or cancel loses them too. Set exitSignalHandler: true (ModelLink's training loop supports it) to stop at any iteration without loss`,
    }));
}
