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
