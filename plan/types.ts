/**
 * What planning produces: plain data the workflow carries (it crosses Temporal as JSON), per stage
 * the exact command, its inputs, its output and, for training stages, what a resume needs.
 */
import type { Arg } from '../frameworks/modellink/args.ts';
import type { Converter, Entrypoint, FrameworkChoice } from '../frameworks/index.ts';
import type { FailureClass } from '../failures/failures.ts';
import type { HangWindows } from '../failures/hang.ts';
import type { Launch } from '../frameworks/launch.ts';
import type { NotifySettings } from '../spec/notify.ts';
import type { SlurmSettings } from '../executors/slurm/plan.ts';
import type { KubernetesSettings } from '../executors/kubernetes/plan.ts';
import type { PipelineSpec, SpecProblem, StageKind } from '../spec/spec.ts';

export type OutputKind = 'pretrain-data' | 'instruction-data' | 'pairwise-data' | 'checkpoint' | 'hf-model' | 'results';

/** What a checkpoint output holds: which implementation, at which layout. */
export interface WeightsFormat {
  impl: 'mcore' | 'legacy';
  tp: number;
  pp: number;
  /** Expert parallel size: MoE shards carry an expert rank in their names. */
  ep: number;
}

export interface StageInput {
  /** Which field of the stage this came from, e.g. "stages[2].data". */
  specPath: string;
  path: string;
  kind: 'file' | 'dir' | 'file-or-dir' | OutputKind;
  /** Set when the input is an earlier stage's output. */
  fromStage?: string;
}

export interface TrainingPlan {
  saveDir: string;
  trainIters: number;
  saveInterval: number;
  /** Apply save-interval advice (Young/Daly) from the attempt log at the next attempt. */
  autoSaveInterval: boolean;
  /** A benchmark case: the job runs its iterations and saves nothing, so there is nothing to resume from or to fence. */
  measureOnly?: boolean;
  seqLength: number;
  globalBatchSize: number;
  worldSize: number;
  tp: number;
  pp: number;
  /** Expert parallel size (MoE): its checkpoints have TP × PP × EP shards. */
  ep: number;
  lora: boolean;
  /** How a LoRA stage resumes on its framework version: exactly, or as a warm restart (absent: exactly, as plans before versions). */
  loraResume?: 'exact' | 'warm';
  /** LoRA: the base weights the first attempt's --load names; a resume loads them through a view (see loraResumeView). */
  loraBase?: string;
  /**
   * DPO: the weights the first attempt's reference model loads (its --load). DPOTrainer loads the reference from
   * --ref-model, else --load, so a resume names them with --ref-model; else the reference would be the policy it
   * resumes. `keepNoLoadRng`: the framework loads the reference under the run's --no-load-rng (Trainer).
   * `loraWithoutFinetune`: a LoRA stage whose first attempt loads no LoRA weights, on a version whose reference then
   * stays the base when not fine-tuning: it resumes without --finetune (else it starts again, activities/attempt/resume.ts).
   * `atReferIter`: a resume names the reference's iteration with --refer-model-iter (2.1.0 ignores its tracker).
   */
  dpoReference?: { load: string; keepNoLoadRng: boolean; loraWithoutFinetune?: true; atReferIter?: true };
  hang: HangWindows;
}

export interface StagePlan {
  name: string;
  kind: StageKind;
  specPath: string;
  /** <workspace>/<pipeline>/<stage>: output, logs and manifest live here. */
  dir: string;
  logDir: string;
  manifestFile: string;
  output: string;
  outputKind: OutputKind;
  entrypoint: Entrypoint;
  /**
   * How the entrypoint starts (torchrun and its options, or python): rendered to argv only where it
   * runs or is shown. Plans recorded before it (histories, running pipelines) carry the rendered
   * `launcher` argv instead: read a stage's launch through launchOf.
   */
  launch: Launch;
  args: Arg[];
  /**
   * The argv of the first attempt as planned (plannedArgv of launch, entrypoint and args): what the
   * stage's fingerprint and manifest record. Nothing decides from it; an attempt renders its own launch.
   * Training resumes rewrite --load (see resumeArgs).
   */
  argv: string[];
  /**
   * The stage's own variables (ModelLink's defaults, then modellink.env, then stage env); the worker's environment is underneath.
   * They travel in the workflow's input, so they are in its history in plain text: secrets go in secretEnv.
   */
  env: Record<string, string>;
  /** Secrets the worker adds to the environment from its own environment or a file: names and files only, never values. */
  secretEnv?: SecretRef[];
  cwd: string;
  setupScript?: string;
  inputs: StageInput[];
  training?: TrainingPlan;
  evaluate?: { tasks: string[]; resultsFile: string };
  /** Checkpoint outputs: their implementation and layout, so later stages are checked against them. */
  format?: WeightsFormat;
  /** The TP/PP/EP layout this stage loads weights in (training, evaluation, inference). */
  loadLayout?: { tp: number; pp: number; ep: number };
  /** The pipeline's own failure patterns (regular expression sources), checked before the built-in ones. */
  failureRules: { class: FailureClass; pattern: string }[];
  /** Written to the process's standard input (chat prompts), then closed. */
  stdin?: string;
  /**
   * Conversions to hf: ModelLink writes into a directory holding the original HF files; this one links to them.
   * `weights: false`: convert_ckpt_v2.py writes its own weights there; `configCopied`: it copies the config and
   * tokenizer files itself (26.0.0 --hf-cfg-dir), so those are not linked (it would write through the links).
   */
  hfView?: { from: string; dir: string; weights?: false; configCopied?: true };
  /** The framework version the stage runs (absent in plans made before versions: ModelLink). */
  framework?: FrameworkChoice;
  /** Convert stages: which converter wrote the weights (recorded in the manifest). */
  converter?: Converter;
  maxAttempts?: number;
  /** cluster.executor slurm: each attempt is one Slurm job with these settings (executors/slurm/plan.ts). */
  slurm?: SlurmSettings;
  /** cluster.executor kubernetes: each attempt is one gang of pods with these settings (executors/kubernetes/). */
  kubernetes?: KubernetesSettings;
}

/** A secret the worker resolves: $name (else the file $name_FILE names), or `file` when given. */
export interface SecretRef {
  name: string;
  /** A file on the worker holding the value (one trailing newline is dropped). */
  file?: string;
  /** Where the spec asks for it, for the error when the worker cannot find it. */
  specPath: string;
}

export interface PipelinePlan {
  name: string;
  /** The framework version every stage runs (absent in plans made before versions: ModelLink). */
  framework?: FrameworkChoice;
  /** The model preset's id (`custom` for model.architecture): what runs are found by (`linkflow list --model`). */
  model?: string;
  /** cluster.nodes: stages launched with torchrun run as a gang of this many node ranks. */
  nodes: number;
  /** Named hosts, rank k on hosts[k]; otherwise free workers of the pool (the task queue). */
  hosts?: string[];
  workspace: string;
  dir: string;
  taskQueue?: string;
  stages: StagePlan[];
  /** The spec's webhooks, or the configured default (LINKFLOW_NOTIFY_WEBHOOK) filled in when the pipeline starts. */
  notify?: NotifySettings;
}

export type PlanResult = { ok: true; plan: PipelinePlan; spec: PipelineSpec; warnings: SpecProblem[] } | { ok: false; problems: SpecProblem[] };

export interface PlanOptions {
  /** Relative paths in the spec are relative to this directory (the spec file's). */
  baseDir: string;
  /** Overrides spec.workspace (the demo runs each time in a fresh one). */
  workspace?: string;
}
