/**
 * convert_ckpt_v2.py (MindSpeed-LLM 2.2.0 on): HF ↔ Megatron-core only, as
 * examples/mcore/qwen3/ckpt_convert_qwen3_{hf2mcore,mcore2hf}.sh run it. No --model-type, no
 * --use-mcore-models, no tokenizer; mg → hf writes the safetensors straight into --save-dir
 * (mindspeed_llm/tasks/checkpoint/convert_mg2hf.py), not into a mg2hf/ subdirectory as v1 does.
 */
import { num, type Arg } from '../modellink/args.ts';

export interface ConvertV2Input {
  from: 'hf' | 'mcore';
  to: 'hf' | 'mcore';
  loadDir: string;
  saveDir: string;
  modelTypeHf: string;
  layout: { tp: number; pp: number; ep: number; numLayerList?: number[]; vpp?: number };
  moeGroupedGemm: boolean;
  /** LoRA weights merged on the way to HF (26.0.0's v2: --lora-load … --save-lora-to-hf is not used, the merge is). */
  lora?: { load: string; r: number; alpha: number; targetModules: string[] };
  /** mg → hf where the parser has --hf-cfg-dir (26.0.0): the original HF model, whose config and tokenizer files it copies. */
  hfCfgDir?: string;
}

/**
 * The files 26.0.0's Mg2HfConvert.copy_hf_cfg copies from --hf-cfg-dir into --save-dir, each read and written
 * with open(dst, 'wb') (mindspeed_llm/tasks/checkpoint/convert_mg2hf.py#L155-165, #L195-217; 26.1.0 the same at
 * #L170-180, #L210-232). Its mg → hf writes
 * only the safetensors and their index: without --hf-cfg-dir the output has no config.json (2.3.0 has no such
 * flag and never copies, convert_mg2hf.py#L1143; 26.0.0's examples/mcore/qwen3/ckpt_convert_qwen3_mcore2hf.sh passes it).
 */
export const HF_CFG_FILE =
  /^(?:.*\.json|.*\.model(?:\.[\w\d]+)?|.*\.jinja|merges\.txt|(?:modeling|configuration|tokenization)_[\w_]+\.py|sample_finetune\.py)$/;

export function convertV2Args(input: ConvertV2Input): Arg[] {
  const { layout } = input;
  const toMg = input.to !== 'hf';
  return [
    ['--load-model-type', input.from === 'hf' ? 'hf' : 'mg'],
    ['--save-model-type', toMg ? 'mg' : 'hf'],
    ...(toMg
      ? ([
          ['--target-tensor-parallel-size', num(layout.tp)],
          ['--target-pipeline-parallel-size', num(layout.pp)],
          ...(layout.ep > 1 ? [['--target-expert-parallel-size', num(layout.ep)]] : []),
          ...(layout.numLayerList ? [['--num-layer-list', layout.numLayerList.join(',')]] : []),
          ...(layout.vpp ? [['--num-layers-per-virtual-pipeline-stage', num(layout.vpp)]] : []),
          ...(input.moeGroupedGemm ? [['--moe-grouped-gemm', null]] : []),
        ] as Arg[])
      : []),
    ['--load-dir', input.loadDir],
    ['--save-dir', input.saveDir],
    ...(!toMg && input.hfCfgDir !== undefined ? ([['--hf-cfg-dir', input.hfCfgDir]] as Arg[]) : []),
    ...(input.lora
      ? ([
          ['--lora-load', input.lora.load],
          ['--lora-r', num(input.lora.r)],
          ['--lora-alpha', num(input.lora.alpha)],
          ['--lora-target-modules', input.lora.targetModules],
        ] as Arg[])
      : []),
    ['--model-type-hf', input.modelTypeHf],
  ];
}
