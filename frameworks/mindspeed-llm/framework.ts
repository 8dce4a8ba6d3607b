/** MindSpeed-LLM (ModelLink's successor) as a Framework, one per version of versions.ts. */
import type { Converter, Entrypoint, Framework } from '../framework.ts';
import { versionRow, type VersionRow } from './versions.ts';

/** The HA flags linkflow knows; a version has those its parser defines (high_availability.py / arguments.py). */
const HA_FLAGS = [
  '--enable-high-availability',
  '--enable-optimizer-state-local-copy',
  '--enable-hbmfault-repair',
  '--enable-worker-reboot',
  '--distributed-optimizer-no-replica',
  '--enable-elastic-training',
];

const cache = new Map<string, Framework>();

export function mindspeedFramework(version: string): Framework | undefined {
  const cached = cache.get(version);
  if (cached) return cached;
  const row = versionRow(version);
  if (!row) return undefined;
  const framework = build(version, row);
  cache.set(version, framework);
  return framework;
}

function build(version: string, row: VersionRow): Framework {
  const { flags } = row;
  const sets = new Map(Object.entries(flags.entrypoints).map(([entry, names]) => [entry, new Set(names)]));
  const pretrainFlags = sets.get('pretrain_gpt.py') ?? new Set<string>();
  const converters: Converter[] = ['convert_ckpt.py', 'convert_ckpt_v2.py'].filter((c): c is Converter => sets.has(c));
  const msl = flags.sources.mindspeed_llm;
  return {
    flavour: 'mindspeed-llm',
    version,
    name: `MindSpeed-LLM ${version}`,
    megatron: flags.sources.megatron?.ref ?? 'unknown',
    source: `Ascend/MindSpeed-LLM@${msl ? msl.commit.slice(0, 8) : version}`,
    pretrain: { entrypoint: 'pretrain_gpt.py' },
    // posttrain_gpt.py builds instruction and pairwise datasets; pretrain_gpt.py no longer does (1.0.0 on).
    sft: { entrypoint: 'posttrain_gpt.py', stage: 'sft' },
    dpo: row.trainers.includes('dpo')
      ? {
          entrypoint: 'posttrain_gpt.py',
          stage: 'dpo',
          referenceUnderRunFlags: row.dpoReferenceUnderRunFlags,
          loraResumeWithoutFinetune: row.dpoLoraReferenceWithoutFinetune,
          referenceAtReferIter: row.dpoReferenceAtReferIter,
        }
      : undefined,
    mcoreDefault: row.mcoreDefault,
    // Legacy examples are gone from 2.2.0 (examples/mcore only); --use-legacy-models still builds them.
    legacyModels: true,
    // Megatron core_v0.12.1 defaults --ckpt-format to torch_dist (the generated default says so).
    pinsTorchFormat: flags.defaults['--ckpt-format'] === 'torch_dist',
    ckptFormatReset: row.ckptFormatReset,
    converters,
    convertV2ModelTypes: flags.convertV2ModelTypes ?? [],
    convertV2Lora: sets.get('convert_ckpt_v2.py')?.has('--lora-load') ?? false,
    onlineConversion: pretrainFlags.has('--enable-hf2mg-convert'),
    evaluationTasks: flags.tasks['evaluation.py'] ?? [],
    evaluationDataPath: row.lastDataPath ? 'last' : 'by-name',
    inferenceTasks: flags.tasks['inference.py'] ?? [],
    // No MindSpeed-LLM patch points the distributed optimizer's state at --lora-load (checkpointing.py
    // load_checkpoint_wrapper only toggles strict), and Huawei's guide says LoRA resume is unsupported:
    // a LoRA attempt that resumes continues from the last LoRA weights with a fresh optimizer and iteration 0.
    loraResume: 'warm',
    highAvailability: {
      flags: HA_FLAGS.filter((f) => pretrainFlags.has(f)),
      env: row.haEnv,
      // 26.0.0 high_availability.py: "enable_high_availability and lora_target_modules" is refused; the HA docs of every version say base models only.
      refusesLora: true,
      // high_availability.py validate_args: HA with --use-dist-ckpt (torch_dist) is unsupported.
      needsTorchFormat: true,
      dyingGasp: row.dyingGasp,
    },
    preprocessHandlers: flags.handlers,
    contextParallelVarlen: row.contextParallelVarlen,
    renamed: flags.renamed,
    choices: flags.choices,
    isKnownFlag: (entrypoint: Entrypoint, flag: string) => sets.get(entrypoint)?.has(flag) ?? false,
    entrypoints: [...sets.keys()] as Entrypoint[],
  };
}
