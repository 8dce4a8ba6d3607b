/**
 * Rules a layout must satisfy before anything runs — the checks Megatron and ModelLink would
 * otherwise make minutes into a job, or not at all. Each problem names the spec path and the rule.
 */
import { mcoreOnlyInUse } from './features.ts';
import { resolveFeatures } from './commands.ts';
import type { Preset } from './presets.ts';
import type { FrameworkChoice } from '../framework.ts';
import { getFramework } from '../index.ts';
import type { PipelineSpec, SpecProblem, Stage } from '../../spec/spec.ts';

type Problems = SpecProblem[];

function worldSize(spec: PipelineSpec): number {
  return spec.cluster.nodes * spec.cluster.devicesPerNode;
}

/** Data-parallel size: the devices left after tensor, pipeline and context parallelism. */
function dataParallelSize(spec: PipelineSpec): number {
  const { tp, pp, cp } = spec.parallel;
  return Math.max(1, Math.floor(worldSize(spec) / (tp * pp * cp)));
}

/** Named hosts: one per node, each once (rank k runs on hosts[k]). */
export function checkHosts(spec: PipelineSpec, problems: Problems): void {
  const hosts = spec.cluster.hosts;
  if (!hosts) return;
  if (hosts.length !== spec.cluster.nodes)
    problems.push({
      path: 'cluster.hosts',
      message: `names ${hosts.length} host${hosts.length === 1 ? '' : 's'} for ${spec.cluster.nodes} node${spec.cluster.nodes === 1 ? '' : 's'}; give one per node (rank k runs on hosts[k])`,
    });
  hosts.forEach((h, i) => {
    if (hosts.indexOf(h) !== i)
      problems.push({ path: `cluster.hosts[${i}]`, message: `"${h}" is already hosts[${hosts.indexOf(h)}]; each node rank needs its own host` });
  });
}

/** Megatron lines whose expert groups are cut from the data- and context-parallel ranks (core_r0.6.0, core_r0.8.0). */
const EXPERTS_FROM_DATA_PARALLEL = ['core_r0.6.0', 'core_r0.8.0'];

/**
 * Expert parallelism. On core_r0.6.0/core_r0.8.0 Megatron's own initialize_model_parallel needs EP to divide
 * the data-parallel size, but ModelLink and MindSpeed-LLM replace it: they call it with EP 1 and build the
 * expert groups over data × context parallel ranks, raising "data_parallel_size * context_parallel_size (…) is
 * not divisible by expert_model_parallel_size" (ModelLink modellink/core/parallel_state.py#L69, registered by
 * modellink/patchs/megatron_patch.py#L263; MindSpeed-LLM 1.0.0 mindspeed_llm/core/parallel_state.py#L74; 2.1.0
 * mindspeed_llm/core/parallel_state.py#L294-297, registered by mindspeed_llm/tasks/megatron_adaptor.py#L646).
 * So EP must divide dp × cp: EP may span the context-parallel ranks (2.1.0's deepseek2 A3 script: dp 1, cp 16, EP 16).
 * core_v0.12.1 builds a separate expert grid (parallel_state.py lines 694-703): it needs only the world size
 * divisible by expert-TP × EP × PP, where expert-TP is --expert-tensor-parallel-size (a verbatim stage argument;
 * tp when absent).
 */
function checkExpertParallel(spec: PipelineSpec, megatron: string, problems: Problems): void {
  const { tp, pp, cp, ep } = spec.parallel;
  if (ep <= 1) return;
  if (EXPERTS_FROM_DATA_PARALLEL.includes(megatron)) {
    const dp = dataParallelSize(spec);
    if ((dp * cp) % ep !== 0)
      problems.push({
        path: 'parallel.ep',
        message: `expert parallel size ${ep} must divide data-parallel × context-parallel size ${dp} × ${cp} = ${dp * cp} (data-parallel size = devices ÷ (tp × pp × cp))`,
      });
    return;
  }
  const world = worldSize(spec);
  const reported = new Set<number>();
  spec.stages.forEach((stage, i) => {
    // Preprocessing and conversion do not build Megatron's parallel groups.
    if (stage.kind === 'preprocess' || stage.kind === 'convert') return;
    const given = stage.args['--expert-tensor-parallel-size'];
    const etp = typeof given === 'string' && /^[1-9][0-9]*$/.test(given) ? Number(given) : tp;
    if (world % (etp * ep * pp) === 0 || reported.has(etp)) return;
    reported.add(etp);
    problems.push({
      path: given === undefined ? 'parallel.ep' : `stages[${i}].args.--expert-tensor-parallel-size`,
      message: `${world} devices must be divisible by expert-tensor parallel ${etp} × expert parallel ${ep} × pp ${pp} (Megatron ${megatron} parallel_state.py; expert-TP is tp unless args set --expert-tensor-parallel-size)`,
    });
  });
}

/** The layers the model is built with: a stage's --num-layers in args (scripts trim models so) overrides the preset's. */
function layerCount(spec: PipelineSpec, preset: Preset): { numLayers: number; of: string } {
  for (const [i, stage] of spec.stages.entries()) {
    const given = stage.args['--num-layers'];
    if (typeof given === 'string' && /^[1-9][0-9]*$/.test(given))
      return { numLayers: Number(given), of: `${preset.name} as stages[${i}].args sets --num-layers` };
  }
  return { numLayers: preset.architecture.numLayers, of: preset.name };
}

/** megatron: the Megatron line of the framework version (Framework.megatron), which decides the expert-parallel rule. */
export function checkLayout(spec: PipelineSpec, preset: Preset, megatron: string, problems: Problems, warnings: Problems): void {
  const a = preset.architecture;
  const p = spec.parallel;
  const { tp, pp, cp } = p;
  const world = worldSize(spec);
  if (a.numAttentionHeads % tp !== 0)
    problems.push({ path: 'parallel.tp', message: `tensor parallel size ${tp} must divide the ${a.numAttentionHeads} attention heads of ${preset.name}` });
  if (a.numQueryGroups !== undefined && a.numQueryGroups % tp !== 0)
    problems.push({ path: 'parallel.tp', message: `tensor parallel size ${tp} must divide the ${a.numQueryGroups} query groups of ${preset.name}` });
  const { numLayers, of } = layerCount(spec, preset);
  if (p.numLayerList) {
    const sum = p.numLayerList.reduce((x, y) => x + y, 0);
    if (p.numLayerList.length !== pp)
      problems.push({ path: 'parallel.numLayerList', message: `has ${p.numLayerList.length} entries; it needs one per pipeline stage (pp = ${pp})` });
    if (sum !== numLayers) problems.push({ path: 'parallel.numLayerList', message: `sums to ${sum}; it must sum to the ${numLayers} layers of ${of}` });
  } else if (numLayers % pp !== 0) {
    problems.push({
      path: 'parallel.pp',
      message: `pipeline parallel size ${pp} must divide the ${numLayers} layers of ${of} (or give parallel.numLayerList)`,
    });
  }
  if (p.vpp !== undefined && (pp < 2 || (numLayers / pp) % p.vpp !== 0)) {
    problems.push({
      path: 'parallel.vpp',
      message: `virtual pipeline needs pp > 1 and ${p.vpp} layers per virtual stage must divide the ${numLayers / pp} layers of each pipeline stage`,
    });
  }
  if (world % (tp * pp * cp) !== 0) {
    problems.push({ path: 'parallel', message: `nodes × devicesPerNode = ${world} devices must be divisible by tp × pp × cp = ${tp * pp * cp}` });
  }
  checkExpertParallel(spec, megatron, problems);
  if (cp > 1) {
    const algo = p.cpAlgo ?? 'ulysses_cp_algo';
    if (algo === 'hybrid_cp_algo' && p.ulyssesDegreeInCp === undefined)
      problems.push({
        path: 'parallel.ulyssesDegreeInCp',
        message: 'required with cpAlgo hybrid_cp_algo (ModelLink: --ulysses-degree-in-cp must be specified in hybrid_cp_algo)',
      });
    const ulysses = algo === 'ulysses_cp_algo' ? cp : algo === 'hybrid_cp_algo' ? (p.ulyssesDegreeInCp ?? 1) : 1;
    if (ulysses > 1 && a.numAttentionHeads % (ulysses * tp) !== 0) {
      problems.push({ path: 'parallel.cp', message: `${a.numAttentionHeads} attention heads must be divisible by ulysses degree ${ulysses} × tp ${tp}` });
    }
    if (algo === 'hybrid_cp_algo' && p.ulyssesDegreeInCp !== undefined && cp % p.ulyssesDegreeInCp !== 0) {
      problems.push({ path: 'parallel.ulyssesDegreeInCp', message: `must divide the context parallel size ${cp}` });
    }
  }
  if (p.sequenceParallel && tp === 1) warnings.push({ path: 'parallel.sequenceParallel', message: 'sequence parallel has no effect with tp = 1' });

  if (spec.model.impl === 'legacy') {
    // ModelLink's feature table marks these mcore-only; MindSpeed-LLM's (2.1.0 README.md#L192-260) lists its features for
    // Mcore only. Some pass MindSpeed-LLM 1.0.0/2.1.0's validation on a legacy model (Megatron core_r0.8.0's legacy checks
    // run before use_legacy_models is set, 2.1.0 mindspeed_llm/training/arguments.py#L1495-1499), which then lacks them.
    for (const { path, flag } of mcoreOnlyInUse(resolveFeatures(spec, preset))) {
      problems.push({ path, message: `${flag} is supported only by Megatron-core models; set model.impl: mcore or remove it` });
    }
  }
  const m = spec.memory;
  if ((m.recomputeMethod !== undefined || m.recomputeNumLayers !== undefined) && m.recomputeGranularity !== 'full') {
    // Some of ModelLink's own scripts do this; Megatron then ignores them.
    warnings.push({ path: 'memory.recomputeGranularity', message: 'recomputeMethod and recomputeNumLayers take effect only with recomputeGranularity: full' });
  }
  if (spec.moe.expertCapacityFactor !== undefined && spec.moe.tokenDispatcherType !== 'alltoall') {
    problems.push({
      path: 'moe.expertCapacityFactor',
      message: 'moe_expert_capacity_factor only works with the alltoall token dispatcher: set moe.tokenDispatcherType: alltoall',
    });
  }
  if (spec.communication.mc2)
    warnings.push({ path: 'communication.mc2', message: 'MC2 needs CANN 8.0.RC2 (24RC2) or newer with matching drivers; it is off by default in ModelLink' });
  if (spec.communication.overlapParamGather && !spec.parallel.distributedOptimizer) {
    problems.push({
      path: 'communication.overlapParamGather',
      message: 'overlapping the parameter all-gather needs the distributed optimizer (parallel.distributedOptimizer: true)',
    });
  }
  checkHighAvailability(spec, problems, warnings);
  if (spec.profiling && spec.profiling.stepEnd <= spec.profiling.stepStart) {
    problems.push({ path: 'profiling.stepEnd', message: `must be greater than stepStart ${spec.profiling.stepStart} (the end step is exclusive)` });
  }
}

/** Context parallelism with --variable-seq-lengths (which linkflow's fine-tunes pass unless args remove it): each version's rule is its Framework's contextParallelVarlen. */
function checkContextParallelVarlen(spec: PipelineSpec, stage: Stage, specPath: string, framework: FrameworkChoice, problems: Problems): void {
  const { cp, tp } = spec.parallel;
  if (stage.kind !== 'finetune' || cp <= 1 || stage.args['--variable-seq-lengths'] === null) return;
  const rule = getFramework(framework)?.contextParallelVarlen ?? 'forbidden';
  if (rule === 'forbidden')
    problems.push({
      path: 'parallel.cp',
      message: `stage ${stage.name} fine-tunes with variable sequence lengths, and ${framework.flavour} ${framework.version} forbids context parallelism with them`,
    });
  const pad = stage.args['--pad-to-multiple-of'];
  const multiple = typeof pad === 'string' && /^[0-9]+$/.test(pad) ? Number(pad) : 8;
  if (rule === 'padded' && multiple % (tp * cp) !== 0)
    problems.push({
      path: `${specPath}.args.--pad-to-multiple-of`,
      message: `with variable sequence lengths and context parallelism, ${framework.flavour} ${framework.version} needs --pad-to-multiple-of (${multiple}) divisible by tp × cp = ${tp * cp}`,
    });
}

/** framework: the version the plan drives; some rules differ between versions. */
export function checkStageRules(
  spec: PipelineSpec,
  preset: Preset,
  stage: Stage,
  specPath: string,
  framework: FrameworkChoice,
  problems: Problems,
  warnings: Problems,
): void {
  const a = preset.architecture;
  if (stage.kind === 'pretrain' || stage.kind === 'finetune') {
    const dp = dataParallelSize(spec);
    if (stage.globalBatchSize % (stage.microBatchSize * dp) !== 0) {
      problems.push({
        path: `${specPath}.globalBatchSize`,
        message: `global batch size ${stage.globalBatchSize} must be divisible by micro batch size ${stage.microBatchSize} × data-parallel size ${dp}`,
      });
    }
    const seq = stage.seqLength ?? a.seqLength;
    const maxPos = stage.maxPositionEmbeddings ?? a.maxPositionEmbeddings;
    if (seq > maxPos)
      problems.push({
        path: `${specPath}.seqLength`,
        message: `sequence length ${seq} exceeds the max position embeddings ${maxPos} (the model's, unless maxPositionEmbeddings is set)`,
      });
    if (spec.parallel.cp > 1 && seq % spec.parallel.cp !== 0)
      problems.push({ path: `${specPath}.seqLength`, message: `sequence length ${seq} must be divisible by the context parallel size ${spec.parallel.cp}` });
    checkContextParallelVarlen(spec, stage, specPath, framework, problems);
    if (spec.memory.reuseFp32Param && stage.precision !== 'bf16') {
      problems.push({
        path: `${specPath}.precision`,
        message: 'memory.reuseFp32Param works only with bf16 (ModelLink: --reuse-fp32-param only support for `bf16`)',
      });
    }
    checkStageHighAvailability(spec, stage, specPath, problems);
    if (stage.saveInterval > stage.trainIters)
      warnings.push({
        path: `${specPath}.saveInterval`,
        message: `save interval ${stage.saveInterval} exceeds trainIters ${stage.trainIters}: only the final checkpoint is saved, so a crash restarts from the beginning`,
      });
    if (spec.profiling && spec.profiling.stepStart >= stage.trainIters)
      warnings.push({ path: 'profiling.stepStart', message: `stage ${stage.name} stops at iteration ${stage.trainIters}, before profiling starts` });
  }
  // AlpacaStyleProcessRewardHandler (MindSpeed-LLM 2.1.0 mindspeed_llm/tasks/preprocess/data_handler.py#L556) tokenizes the
  // raw input and marks --placeholder-token positions with --reward-tokens: no chat template, so no prompt type.
  const templated = (handler: string) => /^(AlpacaStyle|SharegptStyle)/.test(handler) && handler !== 'AlpacaStyleProcessRewardHandler';
  if (stage.kind === 'preprocess' && stage.handler && templated(stage.handler) && !stage.promptType) {
    problems.push({
      path: `${specPath}.promptType`,
      message: `${stage.handler} needs a prompt type (e.g. llama2, qwen, empty), as ModelLink's preprocess_data.py does`,
    });
  }
  if (stage.kind === 'inference' && stage.tasks.includes('chat') && !stage.prompts) {
    problems.push({ path: `${specPath}.prompts`, message: 'chat reads its prompts from standard input: give the prompts to ask' });
  }
  if ((stage.kind === 'evaluate' || stage.kind === 'inference') && spec.parallel.tp * spec.parallel.pp > worldSize(spec)) {
    problems.push({
      path: `${specPath}`,
      message: `${stage.kind} runs on tp × pp = ${spec.parallel.tp * spec.parallel.pp} devices, more than the cluster's ${worldSize(spec)}`,
    });
  }
}

/**
 * MindSpeed-LLM 2.1.0 on: each task reads the last --task-data-path whatever its name (2.3.0
 * evaluation.py#L198-199), so the tasks of one stage must share one path; mmlu_ppl keeps the last path
 * containing "mmlu" (#L248).
 */
export function checkLastDataPath(framework: string, tasks: readonly { name: string; dataPath: string }[], specPath: string, problems: Problems): void {
  const paths = [...new Set(tasks.map((t) => t.dataPath).filter((p) => p !== '' && !p.includes('${')))];
  if (paths.length > 1)
    problems.push({
      path: `${specPath}.tasks`,
      message: `${framework}'s evaluation.py reads every task from the last --task-data-path (${paths.at(-1)}): give each task its own evaluate stage`,
    });
  tasks.forEach((t, i) => {
    if (t.name === 'mmlu_ppl' && t.dataPath !== '' && !t.dataPath.includes('${') && !t.dataPath.includes('mmlu'))
      problems.push({
        path: `${specPath}.tasks[${i}].dataPath`,
        message: `${framework}'s mmlu_ppl reads the last data path containing "mmlu"; ${t.dataPath} does not`,
      });
  });
}

/** The task whose score line a task prints: MindSpeed-LLM's mmlu_ppl.py logs `mmlu acc = a/b=c` (eval_impl/mmlu_ppl.py l. 82). */
export function scoreLineTask(task: string): string {
  return task === 'mmlu_ppl' ? 'mmlu' : task;
}

/**
 * ModelLink's evaluation.py picks each task's data directory by name: for a task in --task it takes
 * the last --task-data-path entry whose path contains the task's name (`if 'mmlu' in path`, one
 * function per task, d4feda79 evaluation.py l. 176-312), and silently skips the task when there is
 * none. So each task's path (as passed, resolved) must contain its name and be the last that does.
 */
export function checkEvaluationDataPaths(tasks: readonly { name: string; dataPath: string }[], specPath: string, problems: Problems): void {
  tasks.forEach((task, i) => {
    const path = `${specPath}.tasks[${i}].dataPath`;
    // Unresolved (reported where it was resolved), or a ${NAME} placeholder left for the user to fill in.
    if (task.dataPath === '' || task.dataPath.includes('${')) return;
    // MindSpeed-LLM evaluation.py needlebench(): the last --task-data-path, whatever its name.
    if (task.name === 'needlebench') {
      if (i !== tasks.length - 1)
        problems.push({ path, message: "MindSpeed-LLM's evaluation.py reads needlebench from the last data path: put the needlebench task last" });
      return;
    }
    // mmlu_ppl(): the last path containing 'mmlu'.
    const name = task.name === 'mmlu_ppl' ? 'mmlu' : task.name;
    task = { ...task, name };
    if (!task.dataPath.includes(task.name)) {
      problems.push({
        path,
        message: `${task.dataPath} does not contain "${task.name}": ModelLink's evaluation.py uses a data path for ${task.name} only when the path contains the task's name, and otherwise skips the task without a word; put the data under a directory named so (e.g. …/${task.name}/test)`,
      });
      return;
    }
    const picked = tasks
      .map((t) => t.dataPath)
      .filter((p) => p.includes(task.name))
      .at(-1);
    if (picked !== task.dataPath) {
      problems.push({
        path,
        message: `ModelLink's evaluation.py would read ${task.name} from ${picked}, the last data path containing "${task.name}", not from ${task.dataPath}; give each task a path only its own name appears in`,
      });
    }
  });
}

/**
 * High availability as ModelLink and MindSpeed check it. It replaces the optimizer with mindio_ttp's
 * replica optimizer whether or not the distributed optimizer is on (ModelLink
 * modellink/core/optimizer/__init__.py get_megatron_optimizer_wrapper), so it does not need
 * `--use-distributed-optimizer`. That optimizer splits the data-parallel group (with context
 * parallelism, ttp_get_dp_cp_replica_group) into two replica groups (ModelLink README, "基于昇腾芯片的高可用特性";
 * MindSpeed docs/features/high_availability.md): the split itself is in closed-source mindio_ttp
 * (ttp_initialize_replica_dp_group), so the rule below is the documented one, two replicas.
 */
const HA_REPLICAS = 2;

function checkHighAvailability(spec: PipelineSpec, problems: Problems, warnings: Problems): void {
  const ha = spec.highAvailability;
  if (ha?.optimizerStateLocalCopy && !ha.enabled) {
    // modellink/training/arguments.py _validate_high_availability: 'switch of the high availability feature is unsupported'.
    problems.push({
      path: 'highAvailability.optimizerStateLocalCopy',
      message: 'needs highAvailability.enabled (ModelLink: --enable-optimizer-state-local-copy without --enable-high-availability is unsupported)',
    });
  }
  if (!ha?.enabled) return;
  warnings.push({ path: 'highAvailability', message: 'ModelLink high availability needs the mindio_ttp package installed on every node' });
  if (spec.memory.reuseFp32Param) {
    // modellink/training/arguments.py _validate_optimizer.
    problems.push({
      path: 'memory.reuseFp32Param',
      message: 'cannot be used with highAvailability.enabled (ModelLink: reuse-fp32-param and enable-high-availability do not support enabling together)',
    });
  }
  const dpWithCp = dataParallelSize(spec) * spec.parallel.cp;
  if (dpWithCp < HA_REPLICAS || dpWithCp % HA_REPLICAS !== 0) {
    problems.push({
      path: 'highAvailability.enabled',
      message: `the replica optimizer of high availability splits the data-parallel group (data-parallel size × cp = ${dpWithCp}) into ${HA_REPLICAS} replicas: it needs a size above 1 divisible by ${HA_REPLICAS} (more devices, or smaller tp × pp)`,
    });
  }
}

/** A stage's own `args` can switch high availability or its incompatible flags on too. */
function checkStageHighAvailability(spec: PipelineSpec, stage: Stage, specPath: string, problems: Problems): void {
  const args = 'args' in stage ? stage.args : {};
  const on = (flag: string, typed: boolean | undefined) => (flag in args ? args[flag] !== null : !!typed);
  if (!on('--enable-high-availability', spec.highAvailability?.enabled)) return;
  if (on('--use-dist-ckpt', false)) {
    // modellink/training/arguments.py _validate_high_availability: HA with --use-dist-ckpt is unsupported.
    problems.push({
      path: `${specPath}.args.--use-dist-ckpt`,
      message: 'cannot be used with high availability (ModelLink: --enable-high-availability with --use-dist-ckpt is unsupported)',
    });
  }
  if (on('--reuse-fp32-param', false) && '--reuse-fp32-param' in args) {
    problems.push({
      path: `${specPath}.args.--reuse-fp32-param`,
      message: 'cannot be used with high availability (ModelLink: reuse-fp32-param and enable-high-availability do not support enabling together)',
    });
  }
}
