/**
 * The pipeline spec: the one file a training engineer writes.
 *
 * Everything a user writes is parsed here with zod; the rest of the code works on the
 * inferred types. Cross-field rules (references between stages, parallel layout) are
 * checked by planPipeline (plan/plan.ts, with frameworks/modellink/rules.ts) so that every problem
 * is reported with its path at once.
 */
import { z } from 'zod';
import { durationSchema } from '../common/duration.ts';
import { FAILURE_CLASSES } from '../failures/failures.ts';
import { notifySchema } from './notify.ts';
import {
  communicationSchema,
  highAvailabilitySchema,
  kernelsSchema,
  memorySchema,
  moeSchema,
  parallelSchema,
  profilingSchema,
} from '../frameworks/modellink/features.ts';
import { FLAVOURS } from '../frameworks/index.ts';
import { tokenizerTypeSchema } from '../frameworks/modellink/architecture.ts';
import { kubernetesSchema } from './kubernetes.ts';
import { envSchema, IMPLS, secretEnvSchema, nonEmpty, nonNegativeInt, PARAMS_DTYPES, positiveInt, positiveNumber, PRECISIONS } from './schema-parts.ts';

import { architectureSchema } from '../frameworks/modellink/architecture.ts';
export { architectureSchema, type Architecture } from '../frameworks/modellink/architecture.ts';

export const modellinkSchema = z.strictObject({
  /** ModelLink checkout on every node; commands run with it as working directory, as its scripts do. */
  root: nonEmpty,
  /** Which framework the checkout is: ModelLink (the default) or its successor MindSpeed-LLM. */
  flavour: z.enum(FLAVOURS).default('modellink'),
  /** Its version (README, Framework versions): ModelLink d4feda79; MindSpeed-LLM 1.0.0 … 26.1.0 (default 26.1.0, the maintained release). */
  version: nonEmpty.optional(),
  /** The weight converter of every convert stage (one per pipeline: v1 and v2 must not be mixed); default by version and model. */
  converter: z.enum(['convert_ckpt.py', 'convert_ckpt_v2.py']).optional(),
  python: nonEmpty.default('python'),
  /** torchrun, or an argv prefix such as ["python", "-m", "torch.distributed.launch"]. */
  launcher: z.union([nonEmpty, z.array(nonEmpty).min(1)]).default('torchrun'),
  /** Sourced once per launch to pick up Ascend's environment (the file path is never put into a shell string). */
  setupScript: nonEmpty.optional(),
  env: envSchema.default({}),
});

/** sbatch's --time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or UNLIMITED. */
const slurmTime = z
  .string()
  .regex(
    /^(UNLIMITED|INFINITE|\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$/,
    'expected a Slurm time limit such as "90", "4:00:00" or "2-00:00:00"',
  );

/** Where stages run when Slurm places them (executors/slurm/plan.ts): one batch job per attempt. */
export const slurmSchema = z.strictObject({
  partition: nonEmpty.optional(),
  account: nonEmpty.optional(),
  qos: nonEmpty.optional(),
  time: slurmTime.optional(),
  /** A generic resource per node, e.g. "npu:8" (sbatch --gres). */
  gresPerNode: z
    .string()
    .regex(/^[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+)?:\d+$/, 'expected a generic resource and a count such as "npu:8"')
    .optional(),
  constraint: nonEmpty.optional(),
  exclude: z.array(z.string().regex(/^[A-Za-z0-9_.\[\],-]+$/, 'expected a Slurm node name or list such as "node[01-03]"')).optional(),
  /** More sbatch options, one per element: "--exclusive", "--mem=0". */
  extraArgs: z.array(z.string().regex(/^--[A-Za-z0-9][A-Za-z0-9-]*(=.*)?$/, 'expected an sbatch option such as "--exclusive" or "--mem=0"')).optional(),
});

const clusterSchema = z.strictObject({
  taskQueue: nonEmpty.optional(),
  /**
   * workers: linkflow workers on the nodes (the default); slurm: each attempt is a Slurm job submitted by a worker that can submit;
   * kubernetes: each attempt is a gang of pods (spec/kubernetes.ts) submitted by a worker that reaches the cluster.
   */
  executor: z.enum(['workers', 'slurm', 'kubernetes']).default('workers'),
  slurm: slurmSchema.optional(),
  kubernetes: kubernetesSchema.optional(),
  nodes: positiveInt.default(1),
  /** Named hosts for a multi-node job, rank k on hosts[k]; without them, the first free workers of the pool. */
  hosts: z.array(nonEmpty).min(1).optional(),
  devicesPerNode: positiveInt.default(8),
  masterAddr: nonEmpty.default('localhost'),
  /** Which node's command `render` shows (a number, or a variable of an imported script); runs use each node's own rank. */
  nodeRank: z.union([z.number().int().min(0), nonEmpty]).optional(),
  masterPort: z
    .union([
      z.number().int().min(1024, 'expected a port between 1024 and 65535').max(65535, 'expected a port between 1024 and 65535'),
      // An imported script's variable, kept for `render`.
      z.string().regex(/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/, 'expected a port between 1024 and 65535'),
    ])
    .default(6000),
});

const modelSchema = z.strictObject({
  preset: nonEmpty.optional(),
  architecture: architectureSchema.optional(),
  /** ModelLink's two implementations: Megatron-core models (--use-mcore-models) or the legacy ones. */
  impl: z.enum(IMPLS).default('mcore'),
  tokenizer: nonEmpty.optional(),
});

/** evaluation.py's tasks across versions (which version has which: frameworks/, checked at validate). */
export const EVALUATION_TASKS = ['mmlu', 'ceval', 'boolq', 'gsm8k', 'human_eval', 'bbh', 'agieval', 'cmmlu', 'mmlu_ppl', 'needlebench'] as const;

/** A stage input: the name of an earlier stage (its output is used) or a path. */
const reference = nonEmpty;

/**
 * ModelLink flags set directly, applied after linkflow's own: a value replaces the flag's value
 * (or adds the flag), `true` adds a bare flag, `null` removes it. Checked against ModelLink's flag
 * list before anything runs.
 */
const argsSchema = z.record(
  z.string().regex(/^--[A-Za-z0-9][A-Za-z0-9_-]*$/, 'expected a flag such as --use-mc2'),
  z.union([z.string(), z.number().transform(String), z.literal(true), z.null(), z.array(z.union([z.string(), z.number().transform(String)])).min(1)]),
);
export type ArgOverrides = z.infer<typeof argsSchema>;

const stageBase = {
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'expected a name of letters, digits, "-", "_" or "."'),
  /** Added to the launch environment; null removes a variable linkflow would set. */
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'),
      z.union([z.string({ error: 'expected a string value (quote numbers in YAML)' }), z.null()]),
    )
    .default({}),
  /** Secrets added to the launch environment on the worker, by name (see secretEnvSchema); their values never reach history, manifests or logs. */
  secretEnv: secretEnvSchema.default([]),
  args: argsSchema.default({}),
  /** For a ModelLink newer than linkflow's flag reference: `args` flags are then not checked before launch. */
  allowUnknownFlags: z.boolean().default(false),
  /** This stage's launcher, when it differs from modellink.launcher (ModelLink's evaluation scripts use python -m torch.distributed.launch). */
  launcher: z.union([nonEmpty, z.array(nonEmpty).min(1)]).optional(),
  masterPort: z.number().int().min(1024).max(65535).optional(),
  maxAttempts: positiveInt.optional(),
};

/** Handlers MindSpeed-LLM added (2.1.0 on), which ModelLink lacks: plan/versions.ts checks the version has them. */
export const MINDSPEED_ONLY_HANDLERS = [
  'HunyuanInstructionHandler',
  'PPOAlpacaStyleInstructionHandler',
  'R1AlpacaStyleInstructionHandler',
  'R1SharegptStyleInstructionHandler',
  'AlpacaStyleProcessRewardHandler',
  'SharegptPretrainHandler',
] as const;

const preprocessStage = z.strictObject({
  ...stageBase,
  kind: z.literal('preprocess'),
  input: reference,
  handler: z
    .enum([
      'GeneralPretrainHandler',
      'AlpacaStyleInstructionHandler',
      'SharegptStyleInstructionHandler',
      'LlamaFactoryInstructionHandler',
      'GeneralInstructionHandler',
      'AlpacaStylePairwiseHandler',
      'SharegptStylePairwiseHandler',
      ...MINDSPEED_ONLY_HANDLERS,
    ])
    .optional(),
  /** --overwrite-cache: rebuild the handler's cached dataset instead of reusing it. */
  overwriteCache: z.boolean().default(false),
  /** --map-keys: which JSON fields hold prompt, query, response, system… (ModelLink's handlers take a JSON object). */
  mapKeys: z.record(z.string(), z.string()).optional(),
  jsonKeys: z.array(nonEmpty).min(1).optional(),
  promptType: nonEmpty.optional(),
  workers: positiveInt.default(4),
  logInterval: positiveInt.default(1000),
  appendEod: z.boolean().default(false),
  pack: z.boolean().default(false),
  seqLength: positiveInt.optional(),
});

const weightFormat = z.enum(['hf', ...IMPLS]);

const convertStage = z.strictObject({
  ...stageBase,
  kind: z.literal('convert'),
  /** The weights to convert: a HuggingFace model directory, a Megatron checkpoint, or an earlier stage. */
  from: reference,
  /** Format of `from` when it is a path (an earlier stage's format is known). Default hf. */
  fromFormat: weightFormat.optional(),
  /** Target format; default model.impl. */
  to: weightFormat.optional(),
  /** Target layout; default the pipeline's parallel settings (hf targets are always 1 × 1). */
  tp: positiveInt.optional(),
  pp: positiveInt.optional(),
  ep: positiveInt.optional(),
  numLayerList: z.array(positiveInt).min(1).optional(),
  vpp: positiveInt.optional(),
  /** For a conversion to hf: the original HuggingFace directory (config and tokenizer); ModelLink writes beside it. */
  hfDir: reference.optional(),
  /** Merge LoRA weights (an earlier LoRA fine-tuning stage or a path) while converting, as ckpt_convert_*_lora.sh do. */
  lora: z
    .strictObject({
      load: reference,
      r: positiveInt.optional(),
      alpha: positiveInt.optional(),
      targetModules: z.array(nonEmpty).min(1).optional(),
    })
    .optional(),
  /** --params-dtype of the converted weights. */
  paramsDtype: z.enum(PARAMS_DTYPES).optional(),
  /** The tokenizer file convert_ckpt.py reads from a HF directory (default: its tokenizer.model). */
  tokenizerModel: nonEmpty.optional(),
});

const trainingFields = {
  ...stageBase,
  data: reference,
  load: reference.optional(),
  trainIters: positiveInt,
  saveInterval: positiveInt,
  /** After a failure, the next attempt saves at the interval Young/Daly recommend from the attempt log (as `linkflow advise` prints it). A setSaveInterval signal still wins. */
  autoSaveInterval: z.boolean().default(false),
  logInterval: positiveInt.default(1),
  microBatchSize: positiveInt.default(1),
  globalBatchSize: positiveInt,
  seqLength: positiveInt.optional(),
  /**
   * --exit-signal-handler: on SIGTERM Megatron saves a checkpoint at the end of the iteration and exits
   * (ModelLink modellink/training/training.py train(), l. 572-578), so `linkflow stop`, cancel and node
   * drains lose nothing. On by default: it is the only public way a trainer saves on SIGTERM (high
   * availability is not shown to), and linkflow's stops rely on it. false leaves SIGTERM fatal.
   */
  exitSignalHandler: z.boolean().default(true),
  /** false: --no-save-optim / --no-save-rng (smaller checkpoints; a resume then restarts the optimizer state). */
  saveOptimizer: z.boolean().optional(),
  saveRng: z.boolean().optional(),
  /** false: --no-shared-storage, for nodes that do not share the save directory. */
  sharedStorage: z.boolean().optional(),
  /** Long-context variants (ModelLink's *_32k/_128k scripts) raise the model's position embeddings. */
  maxPositionEmbeddings: positiveInt.optional(),
  lr: positiveNumber.optional(),
  minLr: z.number().min(0).nullable().optional(),
  precision: z.enum(PRECISIONS).default('bf16'),
  // Optimizer and schedule; unset follows ModelLink's example scripts, null leaves the flag out (ModelLink's default).
  lrDecayStyle: z.enum(['constant', 'linear', 'cosine', 'inverse-square-root']).nullable().optional(),
  lrWarmupFraction: z.number().min(0).max(1).nullable().optional(),
  lrWarmupIters: nonNegativeInt.nullable().optional(),
  lrDecayIters: positiveInt.nullable().optional(),
  weightDecay: z.number().min(0).nullable().optional(),
  clipGrad: z.number().min(0).nullable().optional(),
  adamBeta1: z.number().gt(0).lt(1).nullable().optional(),
  adamBeta2: z.number().gt(0).lt(1).nullable().optional(),
  initialLossScale: positiveNumber.nullable().optional(),
  initMethodStd: positiveNumber.nullable().optional(),
  attentionDropout: z.number().min(0).max(1).nullable().optional(),
  hiddenDropout: z.number().min(0).max(1).nullable().optional(),
  seed: nonNegativeInt.nullable().optional(),
  /** --jit-compile; default on for legacy models, as their scripts do. */
  jitCompile: z.boolean().optional(),
  /** The tokenizer ModelLink loads (default the preset's). */
  tokenizerType: tokenizerTypeSchema.optional(),
  evalInterval: positiveInt.optional(),
  evalIters: nonNegativeInt.default(0),
  split: z
    .string()
    .regex(/^\d+,\d+,\d+$/, 'expected "train,valid,test" such as "949,50,1"')
    .optional(),
  logThroughput: z.boolean().default(true),
  /**
   * --ckpt-format on Megatron core_v0.12.1 (MindSpeed-LLM 2.2.0 on), whose default is torch_dist: linkflow
   * passes torch unless torch_dist is asked for here (pretraining only; 2.3.0 and 26.0.0 validate it and write
   * torch anyway, which plan/versions.ts warns about; 26.1.0 writes torch_dist folders, which resume reads).
   */
  checkpointFormat: z.enum(['torch', 'torch_dist']).optional(),
  /** --async-save: with checkpointFormat torch_dist, pretraining only. */
  asyncSave: z.boolean().default(false),
  /** TensorBoard events in <stage>/tensorboard, one directory for all attempts (plan/tracking.ts); false turns them off. */
  tensorboard: z.boolean().default(true),
  /** Megatron's W&B logging: one run per stage that every attempt appends to (its id in WANDB_RUN_ID). Put WANDB_API_KEY in secretEnv. */
  wandb: z.strictObject({ project: nonEmpty, name: nonEmpty.optional() }).optional(),
  /**
   * Hang detection (see failures/hang.ts): while training, no progress line within
   * max(noProgressTimeout, noProgressFactor × the observed time between log lines) is a hang;
   * before the first iteration the window is startupTimeout, during a checkpoint save checkpointTimeout.
   */
  noProgressTimeout: durationSchema.default('10m'),
  noProgressFactor: positiveNumber.default(20),
  startupTimeout: durationSchema.default('30m'),
  checkpointTimeout: durationSchema.default('30m'),
};

const pretrainStage = z.strictObject({ ...trainingFields, kind: z.literal('pretrain') });

const loraSchema = z.strictObject({
  /** Existing LoRA weights to continue from (--lora-load on the first attempt). */
  load: reference.optional(),
  r: positiveInt.default(16),
  alpha: positiveInt.default(32),
  targetModules: z.array(nonEmpty).min(1).optional(),
  fusion: z.boolean().default(true),
});

const finetuneStage = z.strictObject({
  ...trainingFields,
  kind: z.literal('finetune'),
  promptType: nonEmpty.optional(),
  lora: loraSchema.optional(),
});

/** Direct preference optimisation on pairwise data (chosen/rejected), where the framework version has it. */
const dpoStage = z.strictObject({
  ...trainingFields,
  kind: z.literal('dpo'),
  promptType: nonEmpty.optional(),
  lora: loraSchema.optional(),
  /** --dpo-loss-type (default sigmoid, as the example scripts). */
  lossType: z.enum(['sigmoid', 'hinge', 'ipo']).default('sigmoid'),
  /** --dpo-beta (the framework's default 0.1 when unset). */
  beta: positiveNumber.optional(),
});

const evaluateStage = z.strictObject({
  ...stageBase,
  kind: z.literal('evaluate'),
  load: reference,
  tasks: z
    .array(
      z.strictObject({
        name: z.enum(EVALUATION_TASKS),
        dataPath: nonEmpty,
      }),
    )
    .min(1, 'expected at least one task'),
  maxNewTokens: positiveInt.default(1),
  evaluationBatchSize: positiveInt.optional(),
  seqLength: positiveInt.optional(),
  /** A LoRA stage's output to evaluate on top of `load`. */
  loraLoad: reference.optional(),
  /** Devices to launch on; default tp × pp. */
  devices: positiveInt.optional(),
  precision: z.enum(PRECISIONS).default('bf16'),
  tokenizerType: tokenizerTypeSchema.optional(),
});

const inferenceStage = z.strictObject({
  ...stageBase,
  kind: z.literal('inference'),
  load: reference,
  loraLoad: reference.optional(),
  /** inference.py's tasks (its --task); chat reads `prompts` from standard input. */
  tasks: z
    .array(z.enum(['greedy', 'do_sample', 'beam_search', 'beam_search_with_sampling', 'return_output_log_probs', 'chat']))
    .min(1)
    .default(['greedy']),
  /** What chat is asked, one prompt per turn. */
  prompts: z.array(nonEmpty).min(1).optional(),
  promptType: nonEmpty.optional(),
  maxNewTokens: positiveInt.default(256),
  microBatchSize: positiveInt.default(1),
  globalBatchSize: positiveInt.optional(),
  seqLength: positiveInt.optional(),
  topP: z.number().min(0).max(1).optional(),
  topK: z.number().int().min(0).optional(),
  temperature: z.number().positive().optional(),
  /** Devices to launch on; default tp × pp. */
  devices: positiveInt.optional(),
  precision: z.enum(PRECISIONS).default('bf16'),
  tokenizerType: tokenizerTypeSchema.optional(),
  /** --use-kv-cache (ModelLink's generate and chat scripts use it). */
  kvCache: z.boolean().default(true),
});

const stageSchema = z.discriminatedUnion('kind', [preprocessStage, convertStage, pretrainStage, finetuneStage, dpoStage, evaluateStage, inferenceStage], {
  error: (issue) =>
    issue.code === 'invalid_union' ? 'expected kind to be one of preprocess | convert | pretrain | finetune | dpo | evaluate | inference' : undefined,
});

export const pipelineSpecSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'expected a name of letters, digits, "-", "_" or "."'),
  workspace: nonEmpty,
  modellink: modellinkSchema,
  cluster: clusterSchema.default({ executor: 'workers', nodes: 1, devicesPerNode: 8, masterAddr: 'localhost', masterPort: 6000 }),
  model: modelSchema,
  parallel: parallelSchema.default(parallelSchema.parse({})),
  memory: memorySchema.default(memorySchema.parse({})),
  kernels: kernelsSchema.default({}),
  communication: communicationSchema.default(communicationSchema.parse({})),
  moe: moeSchema.default(moeSchema.parse({})),
  profiling: profilingSchema.optional(),
  /** --use-deter-comp together with HCCL_DETERMINISTIC=True in the launch environment. */
  deterministic: z.boolean().default(false),
  highAvailability: highAvailabilitySchema.optional(),
  /** Webhooks told when the pipeline fails, succeeds, waits for nodes or has used most of a retry budget (spec/notify.ts). */
  notify: notifySchema.optional(),
  /** Secrets every stage gets (a stage's own secretEnv adds to them). */
  secretEnv: secretEnvSchema.default([]),
  /** Extra failure patterns, checked before the built-in ones (README: failure classes). */
  failureRules: z
    .array(
      z.strictObject({
        class: z.enum(FAILURE_CLASSES),
        pattern: z
          .string()
          .min(1)
          .refine((p) => {
            try {
              new RegExp(p);
              return true;
            } catch {
              return false;
            }
          }, 'expected a valid regular expression'),
      }),
    )
    .default([]),
  stages: z.array(stageSchema).min(1, 'expected at least one stage'),
});

export type PipelineSpec = z.infer<typeof pipelineSpecSchema>;
export type Stage = z.infer<typeof stageSchema>;
export type StageKind = Stage['kind'];
export type PreprocessStage = z.infer<typeof preprocessStage>;
export type ConvertStage = z.infer<typeof convertStage>;
/** hf, mcore or legacy: a convert stage's from and to formats. */
export type WeightFormat = z.infer<typeof weightFormat>;
export type PretrainStage = z.infer<typeof pretrainStage>;
export type FinetuneStage = z.infer<typeof finetuneStage>;
export type DpoStage = z.infer<typeof dpoStage>;
export type EvaluateStage = z.infer<typeof evaluateStage>;
export type InferenceStage = z.infer<typeof inferenceStage>;
export type TrainingStage = PretrainStage | FinetuneStage | DpoStage;

export interface SpecProblem {
  path: string;
  message: string;
}

export function formatProblems(problems: SpecProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('\n');
}
