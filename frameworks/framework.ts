/**
 * One interface for every framework linkflow drives (ModelLink and its successor MindSpeed-LLM), per
 * version: which entry point runs each stage, which flags exist, which defaults must be overridden, how
 * a resume rewrites the command, which evaluation tasks print which score line, what high availability
 * needs. The planners (plan/) ask a Framework; they never test a flavour or a version themselves.
 *
 * Adding a version is a row of data (frameworks/mindspeed-llm/versions.ts) and its flag list
 * (frameworks/mindspeed-llm/flag-names/<version>.json, generated from the real parsers).
 */

export const FLAVOURS = ['modellink', 'mindspeed-llm'] as const;
export type Flavour = (typeof FLAVOURS)[number];

export type Entrypoint =
  'pretrain_gpt.py' | 'posttrain_gpt.py' | 'trainer.py' | 'preprocess_data.py' | 'convert_ckpt.py' | 'convert_ckpt_v2.py' | 'evaluation.py' | 'inference.py';

/** The two weight converters: v1 (loader/saver plugins, mg→mg too) and v2 (hf↔mg only, strict flags). */
export type Converter = 'convert_ckpt.py' | 'convert_ckpt_v2.py';

/** Which framework and version a pipeline drives (the spec's `modellink.flavour` and `modellink.version`). */
export interface FrameworkChoice {
  flavour: Flavour;
  version: string;
}

/** A trainer: the script and its --stage (ModelLink fine-tunes with pretrain_gpt.py and no stage). */
export interface Trainer {
  entrypoint: Entrypoint;
  stage?: string;
  /**
   * DPO: its frozen reference model is loaded under the run's own --finetune/--no-load-rng (ModelLink
   * modellink/tasks/rl/dpo.py _init_reference_model; MindSpeed-LLM 1.0.0), so a reference without RNG state
   * (converted weights) needs --no-load-rng once --finetune is gone; 2.1.0+ switch RNG loading off for it.
   */
  referenceUnderRunFlags?: boolean;
  /**
   * DPO with LoRA: not fine-tuning, the reference model loads --ref-model/--load at its tracker without the
   * --lora-load weights, so an attempt can resume the LoRA weights and keep the base as reference (MindSpeed-LLM
   * 2.3.0, 26.0.0; frameworks/mindspeed-llm/dpo-lora-resume.ts).
   */
  loraResumeWithoutFinetune?: boolean;
  /** DPO resumed (not fine-tuning): the reference loads iteration --refer-model-iter of --ref-model, not its tracker's (2.1.0). */
  referenceAtReferIter?: boolean;
}

export interface HighAvailabilitySupport {
  /** The HA flags this version's parser defines. */
  flags: readonly string[];
  /** HIGH_AVAILABILITY (dump|retry|recover|elastic-training) overrides the flags (what ascend-operator injects). */
  env: boolean;
  /** The version refuses HA with LoRA (high_availability.py validate_args). */
  refusesLora: boolean;
  /** HA needs --ckpt-format torch (refused with torch_dist). */
  needsTorchFormat: boolean;
  /** TTP's dying-gasp checkpoint (iter_N_tmp renamed to iter_N at any iteration) is written on a fault. */
  dyingGasp: boolean;
}

export interface Framework extends FrameworkChoice {
  /** "ModelLink d4feda79", "MindSpeed-LLM 2.3.0": how messages name it. */
  name: string;
  /** The Megatron-LM branch the version pins. */
  megatron: string;
  /** Where the parser facts come from: repository@commit. */
  source: string;
  pretrain: Trainer;
  /** Full and LoRA fine-tuning. */
  sft: Trainer;
  /** Direct preference optimisation; undefined when the version has no DPO trainer. */
  dpo?: Trainer;
  /** Megatron-core models are the default: --use-mcore-models is not needed (and legacy needs --use-legacy-models). */
  mcoreDefault: boolean;
  /** The version still builds legacy (non-mcore) models. */
  legacyModels: boolean;
  /** Megatron's default --ckpt-format is torch_dist: linkflow passes --ckpt-format torch unless asked otherwise. */
  pinsTorchFormat: boolean;
  /**
   * Where the version resets --ckpt-format to torch after Megatron's validation (file#lines), so --ckpt-format
   * torch_dist passes validation but torch checkpoints are written; undefined where the flag is honoured or absent.
   */
  ckptFormatReset?: string;
  /** preprocess_data.py's handlers (data_handler.py's classes), where generated; ModelLink: undefined (see plan/versions.ts). */
  preprocessHandlers?: readonly string[];
  /** Context parallelism in a fine-tune with --variable-seq-lengths: forbidden, allowed with padding to tp × cp, or allowed. */
  contextParallelVarlen: 'forbidden' | 'padded' | 'allowed';
  converters: readonly Converter[];
  /** Model types convert_ckpt_v2.py accepts (--model-type-hf choices); empty without v2. */
  convertV2ModelTypes: readonly string[];
  /** convert_ckpt_v2.py merges LoRA weights (--lora-load, --save-lora-to-hf). */
  convertV2Lora: boolean;
  /** Training converts HF weights online (--enable-hf2mg-convert); a resume must switch it off. */
  onlineConversion: boolean;
  evaluationTasks: readonly string[];
  /**
   * Which --task-data-path a task reads: the last one containing its name (ModelLink, MindSpeed-LLM 1.0.0),
   * or simply the last one (2.1.0 on: evaluation.py mmlu() etc. keep the last path; mmlu_ppl still wants 'mmlu' in it).
   */
  evaluationDataPath: 'by-name' | 'last';
  inferenceTasks: readonly string[];
  /** How a LoRA fine-tuning resumes: exactly (iteration, optimizer, RNG from the LoRA checkpoint) or as a warm restart. */
  loraResume: 'exact' | 'warm';
  highAvailability: HighAvailabilitySupport;
  /** Old flag name → new one (the parser still accepts the old one with a DeprecationWarning). */
  renamed: Readonly<Record<string, string>>;
  /** --stage, --ckpt-format, --prompt-type … choices, where the parser has them. */
  choices: Readonly<Record<string, readonly string[] | null>>;
  isKnownFlag(entrypoint: Entrypoint, flag: string): boolean;
  entrypoints: readonly Entrypoint[];
}

/** The name a message gives a framework. */
export function frameworkName(choice: FrameworkChoice): string {
  return choice.flavour === 'modellink' ? `ModelLink ${choice.version}` : `MindSpeed-LLM ${choice.version}`;
}
