/**
 * ModelLink's features as typed options (seed-features.json): parallel strategies, long sequence,
 * MoE, memory, fused kernels, communication overlap, MC2, profiling, deterministic computation and
 * high availability.
 *
 * One table maps each option to its flag. The builders emit from it, `linkflow import` reads
 * scripts back through it, and validation rejects Megatron-core-only options on legacy models
 * from its `mcoreOnly` column (the acceleration table of seed-features.json).
 */
import { z } from 'zod';
import type { Arg } from './args.ts';
import { positiveInt } from '../schema.ts';

export const parallelSchema = z.strictObject({
  tp: positiveInt.default(1),
  pp: positiveInt.default(1),
  sequenceParallel: z.boolean().default(false),
  distributedOptimizer: z.boolean().default(true),
  /** Layers per pipeline stage, e.g. [7, 9, 9, 7]; must have pp entries summing to the model's layers. */
  numLayerList: z.array(positiveInt).min(1).optional(),
  /** Layers per virtual pipeline stage (interleaved schedule). */
  vpp: positiveInt.optional(),
  /** Context parallel size (long sequences; Megatron-core only). */
  cp: positiveInt.default(1),
  cpAlgo: z.enum(['ulysses_cp_algo', 'megatron_cp_algo', 'hybrid_cp_algo']).optional(),
  ulyssesDegreeInCp: positiveInt.optional(),
  cpSendRecvOverlap: z.boolean().default(false),
  /** Expert parallel size (MoE; Megatron-core only). */
  ep: positiveInt.default(1),
});

export const memorySchema = z.strictObject({
  recomputeGranularity: z.enum(['full', 'selective']).optional(),
  recomputeMethod: z.enum(['uniform', 'block']).optional(),
  recomputeNumLayers: positiveInt.optional(),
  recomputeActivationFunction: z.boolean().default(false),
  reuseFp32Param: z.boolean().default(false),
});

/** Fused kernels; unset ones follow the preset (what its example script uses). */
export const kernelsSchema = z.strictObject({
  flashAttn: z.boolean().optional(),
  fusedRmsnorm: z.boolean().optional(),
  fusedSwiglu: z.boolean().optional(),
  fusedRotaryPosEmb: z.boolean().optional(),
  slidingWindow: positiveInt.optional(),
});

export const communicationSchema = z.strictObject({
  /** Default: on with the distributed optimizer, as ModelLink's scripts do. */
  overlapGradReduce: z.boolean().optional(),
  overlapParamGather: z.boolean().default(false),
  /** MC2 fuses matmul and communication; needs CANN 8.0.RC2 (24RC2) or newer and matching drivers. Off by default. */
  mc2: z.boolean().default(false),
});

export const moeSchema = z.strictObject({
  permutationAsyncComm: z.boolean().default(false),
  groupedGemm: z.boolean().default(false),
  tokenDispatcherType: z.enum(['allgather', 'alltoall']).optional(),
  routerLoadBalancingType: z.enum(['aux_loss', 'group_limited_greedy', 'softmax_topk']).optional(),
  auxLossCoeff: z.number().min(0).optional(),
  expertCapacityFactor: z.number().positive().optional(),
});

export const profilingSchema = z.strictObject({
  enabled: z.boolean().default(true),
  stepStart: z.number().int().min(0).default(10),
  /** Exclusive, as ModelLink's --profile-step-end. */
  stepEnd: positiveInt.default(12),
  /** Global ranks to profile; [-1] means all. */
  ranks: z.array(z.number().int().min(-1)).min(1).default([-1]),
  level: z.enum(['level0', 'level1', 'level2']).default('level0'),
  withCpu: z.boolean().default(false),
  withStack: z.boolean().default(false),
  withMemory: z.boolean().default(false),
  recordShapes: z.boolean().default(false),
  savePath: z.string().min(1).default('./profile_dir'),
});

export const highAvailabilitySchema = z.strictObject({
  /**
   * ModelLink's high availability (needs the mindio_ttp package on every node). Its replica optimizer
   * replaces the optimizer with or without the distributed one; rules.ts checkHighAvailability has
   * ModelLink's checks. linkflow's stops do not rely on it saving on SIGTERM (--exit-signal-handler does).
   */
  enabled: z.boolean().default(true),
  /** --enable-optimizer-state-local-copy: keeps the previous step's optimizer state; only with `enabled`. */
  optimizerStateLocalCopy: z.boolean().default(false),
  /** MindSpeed-LLM --enable-hbmfault-repair: an uncorrectable HBM error is repaired from the replica and the step re-run (UCE). */
  hbmFaultRepair: z.boolean().default(false),
  /** MindSpeed-LLM --enable-worker-reboot: a faulty node's processes restart and rejoin (ARF). */
  workerReboot: z.boolean().default(false),
  /** MindSpeed-LLM 2.2.0+ --distributed-optimizer-no-replica: no replica optimizer; repairs reload the last checkpoint. */
  noReplica: z.boolean().default(false),
  /** MindSpeed-LLM 2.2.0+ --enable-elastic-training: scale in by data-parallel domains, out again later. */
  elasticTraining: z.boolean().default(false),
  /**
   * HIGH_AVAILABILITY (MindSpeed-LLM 2.2.0+, what ascend-operator injects from recover-strategy):
   * dump → HA, retry → + hbmfault repair, recover → + worker reboot, elastic-training → + elastic.
   */
  strategies: z
    .array(z.enum(['dump', 'retry', 'recover', 'elastic-training']))
    .min(1)
    .optional(),
});

/** The feature sections of a spec, as the builders see them after defaults. */
export interface Features {
  parallel: z.infer<typeof parallelSchema>;
  memory: z.infer<typeof memorySchema>;
  kernels: z.infer<typeof kernelsSchema>;
  communication: z.infer<typeof communicationSchema>;
  moe: z.infer<typeof moeSchema>;
  profiling?: z.infer<typeof profilingSchema>;
  deterministic: boolean;
  highAvailability?: z.infer<typeof highAvailabilitySchema>;
}

type Section = 'parallel' | 'memory' | 'kernels' | 'communication' | 'moe' | 'profiling' | 'highAvailability';

export interface FeatureFlag {
  section: Section;
  key: string;
  flag: string;
  kind: 'bool' | 'int' | 'float' | 'string' | 'ints' | 'csv';
  /** Megatron-core only (seed-features.json: mcore true, legacy false). */
  mcoreOnly?: boolean;
  /** Emitted only when it differs from this value (ModelLink's default). */
  omitWhen?: unknown;
}

/**
 * Option → flag. tp/pp/sequence parallel/distributed optimizer are emitted by the builders at the
 * place ModelLink's scripts put them; everything here is appended after the model's flags.
 * Note: seed-features.json names the send/recv overlap flag --cp-send-recv-overlap; ModelLink's
 * parser (flags.json) defines --use-cp-send-recv-overlap, which is what we emit.
 */
export const FEATURE_FLAGS: readonly FeatureFlag[] = [
  { section: 'parallel', key: 'numLayerList', flag: '--num-layer-list', kind: 'csv' },
  { section: 'parallel', key: 'vpp', flag: '--num-layers-per-virtual-pipeline-stage', kind: 'int' },
  { section: 'parallel', key: 'cp', flag: '--context-parallel-size', kind: 'int', mcoreOnly: true, omitWhen: 1 },
  { section: 'parallel', key: 'cpAlgo', flag: '--context-parallel-algo', kind: 'string', mcoreOnly: true },
  { section: 'parallel', key: 'ulyssesDegreeInCp', flag: '--ulysses-degree-in-cp', kind: 'int', mcoreOnly: true },
  { section: 'parallel', key: 'cpSendRecvOverlap', flag: '--use-cp-send-recv-overlap', kind: 'bool', mcoreOnly: true },
  { section: 'parallel', key: 'ep', flag: '--expert-model-parallel-size', kind: 'int', mcoreOnly: true, omitWhen: 1 },
  { section: 'memory', key: 'recomputeGranularity', flag: '--recompute-granularity', kind: 'string' },
  { section: 'memory', key: 'recomputeMethod', flag: '--recompute-method', kind: 'string' },
  { section: 'memory', key: 'recomputeNumLayers', flag: '--recompute-num-layers', kind: 'int' },
  { section: 'memory', key: 'recomputeActivationFunction', flag: '--recompute-activation-function', kind: 'bool' },
  { section: 'memory', key: 'reuseFp32Param', flag: '--reuse-fp32-param', kind: 'bool' },
  { section: 'kernels', key: 'flashAttn', flag: '--use-flash-attn', kind: 'bool' },
  { section: 'kernels', key: 'fusedRmsnorm', flag: '--use-fused-rmsnorm', kind: 'bool' },
  { section: 'kernels', key: 'fusedSwiglu', flag: '--use-fused-swiglu', kind: 'bool' },
  { section: 'kernels', key: 'fusedRotaryPosEmb', flag: '--use-fused-rotary-pos-emb', kind: 'bool' },
  { section: 'kernels', key: 'slidingWindow', flag: '--sliding-window', kind: 'int' },
  { section: 'communication', key: 'overlapGradReduce', flag: '--overlap-grad-reduce', kind: 'bool' },
  { section: 'communication', key: 'overlapParamGather', flag: '--overlap-param-gather', kind: 'bool', mcoreOnly: true },
  { section: 'communication', key: 'mc2', flag: '--use-mc2', kind: 'bool' },
  { section: 'moe', key: 'permutationAsyncComm', flag: '--moe-permutation-async-comm', kind: 'bool', mcoreOnly: true },
  { section: 'moe', key: 'groupedGemm', flag: '--moe-grouped-gemm', kind: 'bool' },
  { section: 'moe', key: 'tokenDispatcherType', flag: '--moe-token-dispatcher-type', kind: 'string' },
  { section: 'moe', key: 'routerLoadBalancingType', flag: '--moe-router-load-balancing-type', kind: 'string' },
  { section: 'moe', key: 'auxLossCoeff', flag: '--moe-aux-loss-coeff', kind: 'float' },
  { section: 'moe', key: 'expertCapacityFactor', flag: '--moe-expert-capacity-factor', kind: 'float' },
  { section: 'profiling', key: 'enabled', flag: '--profile', kind: 'bool' },
  { section: 'profiling', key: 'stepStart', flag: '--profile-step-start', kind: 'int' },
  { section: 'profiling', key: 'stepEnd', flag: '--profile-step-end', kind: 'int' },
  { section: 'profiling', key: 'ranks', flag: '--profile-ranks', kind: 'ints' },
  { section: 'profiling', key: 'level', flag: '--profile-level', kind: 'string' },
  { section: 'profiling', key: 'withCpu', flag: '--profile-with-cpu', kind: 'bool' },
  { section: 'profiling', key: 'withStack', flag: '--profile-with-stack', kind: 'bool' },
  { section: 'profiling', key: 'withMemory', flag: '--profile-with-memory', kind: 'bool' },
  { section: 'profiling', key: 'recordShapes', flag: '--profile-record-shapes', kind: 'bool' },
  { section: 'profiling', key: 'savePath', flag: '--profile-save-path', kind: 'string' },
  { section: 'highAvailability', key: 'enabled', flag: '--enable-high-availability', kind: 'bool' },
  { section: 'highAvailability', key: 'optimizerStateLocalCopy', flag: '--enable-optimizer-state-local-copy', kind: 'bool' },
  { section: 'highAvailability', key: 'hbmFaultRepair', flag: '--enable-hbmfault-repair', kind: 'bool' },
  { section: 'highAvailability', key: 'workerReboot', flag: '--enable-worker-reboot', kind: 'bool' },
  { section: 'highAvailability', key: 'noReplica', flag: '--distributed-optimizer-no-replica', kind: 'bool' },
  { section: 'highAvailability', key: 'elasticTraining', flag: '--enable-elastic-training', kind: 'bool' },
];

const DETERMINISTIC_FLAG = '--use-deter-comp';
/** ModelLink's README: deterministic computation needs the flag and this variable together. */
export const DETERMINISTIC_ENV = { HCCL_DETERMINISTIC: 'True' } as const;

function toArg(f: FeatureFlag, value: unknown): Arg | undefined {
  if (value === undefined || value === null || value === false) return undefined;
  if (f.omitWhen !== undefined && value === f.omitWhen) return undefined;
  switch (f.kind) {
    case 'bool':
      return [f.flag, null];
    case 'ints':
      return [f.flag, (value as number[]).map(String)];
    case 'csv':
      return [f.flag, (value as number[]).join(',')];
    default:
      return [f.flag, String(value)];
  }
}

/** The feature flags of a training launch, in table order. */
export function featureArgs(features: Features): Arg[] {
  const out: Arg[] = [];
  for (const f of FEATURE_FLAGS) {
    const section = features[f.section] as Record<string, unknown> | undefined;
    if (!section) continue;
    if (f.section === 'profiling' && !section.enabled) continue;
    if (f.section === 'highAvailability' && !section.enabled) continue;
    const arg = toArg(f, section[f.key]);
    if (arg) out.push(arg);
  }
  if (features.deterministic) out.push([DETERMINISTIC_FLAG, null]);
  return out;
}

/** Options set on a legacy model that only Megatron-core implements, as "section.key" paths. */
export function mcoreOnlyInUse(features: Features): { path: string; flag: string }[] {
  const out: { path: string; flag: string }[] = [];
  for (const f of FEATURE_FLAGS) {
    if (!f.mcoreOnly) continue;
    const section = features[f.section] as Record<string, unknown> | undefined;
    if (section && toArg(f, section[f.key])) out.push({ path: `${f.section}.${f.key}`, flag: f.flag });
  }
  return out;
}

const SECTION_SCHEMAS = {
  parallel: parallelSchema,
  memory: memorySchema,
  kernels: kernelsSchema,
  communication: communicationSchema,
  moe: moeSchema,
  profiling: profilingSchema,
  highAvailability: highAvailabilitySchema,
} as const;

/** Whether a typed option takes this value (an imported script may pass a value only a newer version knows). */
export function acceptsValue(f: FeatureFlag, value: unknown): boolean {
  const field = (SECTION_SCHEMAS[f.section].shape as Record<string, z.ZodType>)[f.key];
  return field !== undefined && field.safeParse(value).success;
}
