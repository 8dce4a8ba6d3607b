/** ModelLink (aeeeeeep/ModelLink d4feda79, Megatron core_r0.6.0) as a Framework: what linkflow was first written against. */
import type { Entrypoint, Framework } from '../framework.ts';
import flagNames from './flag-names.json' with { type: 'json' };

export const MODELLINK_VERSION = 'd4feda79';

const sets = new Map(Object.entries(flagNames as Record<string, string[]>).map(([entry, names]) => [entry, new Set(names)]));

export const modellinkFramework: Framework = {
  flavour: 'modellink',
  version: MODELLINK_VERSION,
  name: `ModelLink ${MODELLINK_VERSION}`,
  megatron: 'core_r0.6.0',
  source: 'aeeeeeep/ModelLink@d4feda79',
  pretrain: { entrypoint: 'pretrain_gpt.py' },
  // examples/mcore/llama2/tune_llama2_7b_full_ptd.sh: pretrain_gpt.py --finetune --is-instruction-dataset.
  sft: { entrypoint: 'pretrain_gpt.py' },
  // trainer.py --stage dpo (modellink/training/arguments.py: --stage choices dpo, rm).
  dpo: { entrypoint: 'trainer.py', stage: 'dpo', referenceUnderRunFlags: true },
  mcoreDefault: false,
  legacyModels: true,
  pinsTorchFormat: false,
  // modellink/training/arguments.py _validate_instruction_finetune: "Context parallelism is forbidden when use variable seq lengths."
  contextParallelVarlen: 'forbidden',
  converters: ['convert_ckpt.py'],
  convertV2ModelTypes: [],
  convertV2Lora: false,
  onlineConversion: false,
  // evaluation.py l. 327-361.
  evaluationTasks: ['mmlu', 'gsm8k', 'boolq', 'ceval', 'bbh', 'agieval', 'human_eval'],
  evaluationDataPath: 'by-name',
  // modellink/tasks/inference/text_generation/infer_base.py l. 59-73.
  inferenceTasks: ['greedy', 'do_sample', 'beam_search', 'beam_search_with_sampling', 'return_output_log_probs', 'chat'],
  // _load_base_checkpoint_wrapper merges the --lora-load state (iteration, optimizer, RNG) over the base's.
  loraResume: 'exact',
  highAvailability: {
    flags: ['--enable-high-availability', '--enable-optimizer-state-local-copy'],
    env: false,
    refusesLora: false,
    needsTorchFormat: true,
    dyingGasp: false,
  },
  renamed: {},
  choices: {
    '--stage': ['dpo', 'rm'],
    // Megatron core_r0.6.0 megatron/training/arguments.py#L709-710, plus alibi (modellink/training/arguments.py#L525).
    '--position-embedding-type': ['learned_absolute', 'rope', 'alibi'],
    // modellink/training/arguments.py l. 288-298 (_add_tokenizer_args).
    '--tokenizer-type': [
      'BertWordPieceLowerCase',
      'BertWordPieceCase',
      'GPT2BPETokenizer',
      'SentencePieceTokenizer',
      'GPTSentencePieceTokenizer',
      'Llama2Tokenizer',
      'PretrainedFromHF',
      'NullTokenizer',
    ],
  },
  isKnownFlag: (entrypoint: Entrypoint, flag: string) => sets.get(entrypoint)?.has(flag) ?? false,
  entrypoints: [...sets.keys()] as Entrypoint[],
};
