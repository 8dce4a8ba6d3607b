/**
 * A convert stage: convert_ckpt.py (v1) between HF, Megatron-core and legacy weights, or to another
 * TP/PP/EP layout; or MindSpeed-LLM's convert_ckpt_v2.py, HF ↔ mcore only. The pipeline's converter
 * (plan/versions.ts chooseConverter) does every conversion of the model. A conversion to HF writes into
 * a directory of links to the original HF model (v1 into its mg2hf/, v2 beside the links).
 */
import path from 'node:path';
import { buildConvert, type ConvertPaths } from '../frameworks/modellink/commands.ts';
import { convertV2Args } from '../frameworks/mindspeed-llm/convert-v2.ts';
import { pythonLaunch } from '../frameworks/launch.ts';
import { versionsWith } from '../frameworks/index.ts';
import type { ConvertStage } from '../spec/spec.ts';
import type { StageContext, StageDraft } from './context.ts';

/** Where the converted weights go: --save-dir, the stage's output, and what it holds. */
type Target = Pick<StageDraft, 'output' | 'outputKind' | 'format' | 'hfView'> & { saveDir: string };

export function planConvert(ctx: StageContext, stage: ConvertStage): StageDraft {
  const { spec, problems, specPath } = ctx;
  const producer = ctx.earlier.find((p) => p.name === stage.from);
  const from = producer ? (producer.outputKind === 'hf-model' ? 'hf' : (producer.format?.impl ?? 'mcore')) : (stage.fromFormat ?? 'hf');
  const to = stage.to ?? spec.model.impl;
  if (from === to && to === 'hf') problems.push({ path: `${specPath}.to`, message: 'from and to are both hf: nothing to convert' });
  const loadDir = ctx.ref('from', stage.from, ['checkpoint', 'hf-model'], from === 'hf' ? 'dir' : 'checkpoint');
  const layout =
    to === 'hf'
      ? { tp: 1, pp: 1, ep: 1 }
      : {
          tp: stage.tp ?? spec.parallel.tp,
          pp: stage.pp ?? spec.parallel.pp,
          ep: stage.ep ?? spec.parallel.ep,
          numLayerList: stage.numLayerList ?? spec.parallel.numLayerList,
          vpp: stage.vpp ?? spec.parallel.vpp,
        };
  const v2 = ctx.converter === 'convert_ckpt_v2.py';
  if (v2) checkV2(ctx, stage, from, to);
  if (to !== 'hf') checkTargetLayout(ctx, stage, layout, v2);
  // 26.0.0's v2 copies the original's config and tokenizer files itself from --hf-cfg-dir (HF_CFG_FILE).
  const copiesConfig = v2 && to === 'hf' && ctx.framework.isKnownFlag('convert_ckpt_v2.py', '--hf-cfg-dir');
  const target: Target =
    to === 'hf'
      ? hfTarget(ctx, stage, v2, copiesConfig)
      : {
          saveDir: path.join(ctx.dir, 'weights'),
          output: path.join(ctx.dir, 'weights'),
          outputKind: 'checkpoint',
          format: { impl: to, tp: layout.tp, pp: layout.pp, ep: layout.ep },
        };
  const lora = loraToMerge(ctx, stage);
  let command;
  if (loadDir && v2) {
    command = {
      entrypoint: 'convert_ckpt_v2.py' as const,
      launch: pythonLaunch(ctx.stageSpec.modellink.python),
      args: convertV2Args({
        from: from === 'hf' ? 'hf' : 'mcore',
        to: to === 'hf' ? 'hf' : 'mcore',
        loadDir,
        saveDir: target.saveDir,
        modelTypeHf: ctx.preset.architecture.hfModelType,
        layout,
        moeGroupedGemm: spec.moe.groupedGemm,
        hfCfgDir: copiesConfig ? target.hfView?.from : undefined,
        lora: lora && {
          load: lora.load,
          r: lora.options.r,
          alpha: lora.options.alpha,
          targetModules: lora.options.targetModules ?? ['linear_qkv', 'linear_proj', 'linear_fc1', 'linear_fc2'],
        },
      }),
      env: {},
    };
  } else if (loadDir) {
    const tokenizerModel = from === 'hf' ? (stage.tokenizerModel ? ctx.resolve(stage.tokenizerModel) : path.join(loadDir, 'tokenizer.model')) : undefined;
    command = buildConvert(ctx.stageSpec, ctx.preset, stage, { loadDir, saveDir: target.saveDir, from, to, layout, tokenizerModel, lora });
  }
  return { command, output: target.output, outputKind: target.outputKind, format: target.format, hfView: target.hfView };
}

/** Megatron → HF: ModelLink writes mg2hf/ into a directory holding the original HF model's files; the stage's own links to them. */
function hfTarget(ctx: StageContext, stage: ConvertStage, v2: boolean, copiesConfig: boolean): Target {
  const { spec } = ctx;
  const firstHf = spec.stages.find((s) => s.kind === 'convert' && (s.fromFormat ?? 'hf') === 'hf' && !spec.stages.some((t) => t.name === s.from));
  const hfSource =
    stage.hfDir !== undefined ? ctx.ref('hfDir', stage.hfDir, ['hf-model'], 'dir') : firstHf?.kind === 'convert' ? ctx.resolve(firstHf.from) : undefined;
  if (!hfSource)
    ctx.problems.push({
      path: `${ctx.specPath}.hfDir`,
      message: 'required for a conversion to hf: the original HuggingFace model directory (its config and tokenizer)',
    });
  const saveDir = path.join(ctx.dir, 'hf');
  // v2 writes the safetensors straight into --save-dir: the view links the original's other files only, and on
  // 26.0.0 not those it copies from --hf-cfg-dir either (2.3.0 copies none: the config comes through the view).
  if (v2) {
    const view = hfSource ? { from: hfSource, dir: saveDir, weights: false as const, ...(copiesConfig ? { configCopied: true as const } : {}) } : undefined;
    return { saveDir, output: saveDir, outputKind: 'hf-model', hfView: view };
  }
  return { saveDir, output: path.join(saveDir, 'mg2hf'), outputKind: 'hf-model', hfView: hfSource ? { from: hfSource, dir: saveDir } : undefined };
}

/** LoRA weights merged into the base during the conversion, with the settings of the stage that trained them unless given. */
function loraToMerge(ctx: StageContext, stage: ConvertStage): ConvertPaths['lora'] {
  if (!stage.lora) return undefined;
  const loraLoad = ctx.ref('lora.load', stage.lora.load, ['checkpoint'], 'checkpoint');
  const trained = ctx.spec.stages.find((s) => s.name === stage.lora!.load);
  const trainedLora = trained?.kind === 'finetune' ? trained.lora : undefined;
  const r = stage.lora.r ?? trainedLora?.r;
  const alpha = stage.lora.alpha ?? trainedLora?.alpha;
  if (r === undefined || alpha === undefined)
    ctx.problems.push({ path: `${ctx.specPath}.lora`, message: 'give r and alpha (or load from a LoRA fine-tuning stage, whose settings are used)' });
  if (loraLoad && r !== undefined && alpha !== undefined)
    return { load: loraLoad, options: { r, alpha, fusion: false, targetModules: stage.lora.targetModules ?? trainedLora?.targetModules } };
  return undefined;
}

/** convert_ckpt_v2.py converts hf → mg and mg → hf only ("This conversion scheme is not supported"), mcore models only. */
function checkV2(ctx: StageContext, stage: ConvertStage, from: string, to: string): void {
  const { framework, specPath, problems } = ctx;
  const v1 = versionsWith((f) => f.converters.includes('convert_ckpt.py') && f.flavour === framework.flavour);
  if (from === to || (from !== 'hf' && to !== 'hf'))
    problems.push({
      path: `${specPath}.to`,
      message: `convert_ckpt_v2.py converts only between hf and mcore (no mg → mg resharding); reshard through hf (two convert stages), or set modellink.converter: convert_ckpt.py (${v1})`,
    });
  if (from === 'legacy' || to === 'legacy')
    problems.push({ path: `${specPath}.to`, message: 'convert_ckpt_v2.py knows Megatron-core models only; legacy needs modellink.converter: convert_ckpt.py' });
  if (stage.lora && !framework.convertV2Lora)
    problems.push({
      path: `${specPath}.lora`,
      message: `${framework.name}'s convert_ckpt_v2.py cannot merge LoRA weights (${versionsWith((f) => f.convertV2Lora)} can); set modellink.converter: convert_ckpt.py`,
    });
}

const countOf = (list: unknown): number => (typeof list === 'string' ? list.split(',').filter((x) => x.trim() !== '').length : 0);

/**
 * The layout a conversion writes must be one the converter and Megatron take. The converter's layer count is
 * the HF model's plus its --noop-layers (convert_hf2mg.py: num_layers + len(noop_layers)); a preset's count
 * already holds the noop layers of its own script. v2 (MindSpeed-LLM 2.3.0 mindspeed_llm/tasks/checkpoint/
 * convert_hf2mg.py _valid_parameter): pp divides the layers, fewer layers per virtual stage than per pipeline
 * stage, --num-layer-list neither with a virtual pipeline nor with noop layers, one entry per stage summing to
 * the layers. Both (Megatron validate_args, core_r0.8.0 arguments.py#L254-270, core_v0.12.1 #L432-464, which v1's
 * saver runs on the target): pp > 1 with a virtual pipeline, whose layers per stage it divides.
 */
function checkTargetLayout(ctx: StageContext, stage: ConvertStage, layout: { pp: number; numLayerList?: number[]; vpp?: number }, v2: boolean): void {
  const { preset, specPath, problems } = ctx;
  const own = preset.architectureArgs[ctx.spec.model.impl]?.find(([f]) => f === '--noop-layers')?.[1];
  const noopArg = stage.args['--noop-layers'];
  const noop = countOf(noopArg);
  const given = stage.args['--num-layers'];
  const hfLayers = typeof given === 'string' && /^[1-9][0-9]*$/.test(given) ? Number(given) : preset.architecture.numLayers - countOf(own);
  // A layout wholly the pipeline's, over the model's own layers, is checkLayout's (frameworks/modellink/rules.ts) to report.
  if (stage.pp === undefined && stage.vpp === undefined && stage.numLayerList === undefined && !noop && given === undefined) return;
  const layers = hfLayers + noop;
  const of = `the ${layers} layers of ${preset.name}${noop ? ` with ${noop} noop layers` : ''}`;
  const { pp, numLayerList: list, vpp } = layout;
  const at = (field: string) => (stage[field as keyof ConvertStage] !== undefined ? `${specPath}.${field}` : `parallel.${field}`);
  if (list) {
    if (list.length !== pp)
      problems.push({ path: at('numLayerList'), message: `has ${list.length} entries; the converter needs one per pipeline stage (pp = ${pp})` });
    const sum = list.reduce((x, y) => x + y, 0);
    if (sum !== layers) problems.push({ path: at('numLayerList'), message: `sums to ${sum}; the converter needs ${of}` });
    if (v2 && vpp !== undefined)
      problems.push({
        path: at('vpp'),
        message: 'convert_ckpt_v2.py refuses --num-layer-list with a virtual pipeline ("num_layer_list and vpp cannot be configured at the same time")',
      });
    if (v2 && noop) problems.push({ path: `${specPath}.args.--noop-layers`, message: 'convert_ckpt_v2.py refuses --num-layer-list with --noop-layers' });
  } else if (layers % pp !== 0) {
    problems.push({ path: at('pp'), message: `target pipeline parallel size ${pp} must divide ${of} (or give numLayerList)` });
  }
  if (vpp === undefined) return;
  const perStage = list ? undefined : layers / pp;
  if (pp < 2 || (perStage !== undefined && Number.isInteger(perStage) && (perStage % vpp !== 0 || (v2 && vpp >= perStage))))
    problems.push({
      path: at('vpp'),
      message: `a virtual pipeline needs target pp > 1 and ${vpp} layers per virtual stage ${v2 ? 'fewer than and dividing' : 'dividing'} the ${perStage ?? '?'} layers of each pipeline stage (${of}, pp ${pp})`,
    });
}
