"""Which framework the emulator stands in for: ModelLink d4feda79 (the default, emulator/*.py) or one MindSpeed-LLM
release (an emulator root, emulator/roots/mindspeed-llm-<version>/, selects it before running an entrypoint).

Everything that differs between them and that the emulator models is a field here, each with the source it was
read from (github.com/Ascend/MindSpeed-LLM at the release branch head; Megatron-LM at the core version the
release's install guide pins; reference/README.md lists the commits).
"""
import os
from dataclasses import dataclass

from . import EMULATOR_ROOT


@dataclass(frozen=True)
class Version:
    name: str  # 'modellink' or the MindSpeed-LLM release ('2.3.0')
    core: str  # the Megatron-LM core the release runs on
    flags_file: str
    # print_args' title: ModelLink's 'ModelLink Arguments'; MindSpeed-LLM's validate_args wrapper prints
    # 'MindSpeed-LLM Arguments' (1.0.0 mindspeed_llm/training/arguments.py#L994; 2.3.0 #L1511).
    args_title: str
    pkg: str  # the package in logger names and traceback frames
    # Stages AutoTrainer.get_trainer wires (mindspeed_llm/tasks/post[_]train/launcher.py); any other --stage
    # value the parser accepts makes it return None (after logger.info('Unknown Stage: ...')).
    trainers: tuple[str, ...] = ()
    # evaluation.py's dispatch, in its order (`if '<task>' in args.task:`).
    eval_tasks: tuple[str, ...] = ('mmlu', 'gsm8k', 'boolq', 'ceval', 'bbh', 'agieval', 'human_eval')
    # --enable-hf2mg-convert / --enable-mg2hf-convert (features_manager/convert_checkpoint, 2.3.0+).
    online_convert: bool = False
    # _add_dummy_args_v2 sets ckpt_format='torch', use_dist_ckpt=False after Megatron's validation (2.2.0
    # mindspeed_llm/training/arguments.py#L1321-1322; 2.3.0 #L1289-1290; 26.0.0 #L112-113); 26.1.0 no longer does
    # (#L156-176), so Megatron's torch_dist default and --async-save are honoured there.
    resets_ckpt_format: bool = False
    # mindspeed_llm/training/checkpointing.py's save_checkpoint wrapper: the line of its
    # raise NotImplementedError('Async checkpoint save not implemented for legacy checkpoints')
    # (2.1.0 #L279, 2.2.0 #L187, 2.3.0 #L189, 26.0.0 #L191, 26.1.0 #L279).
    save_wrapper_raise_line: int = 279
    # 26.0.0+: a --load holding HF weights switches hf2mg and mg2hf on, each save is copied to mg2hf_iteration<N>/
    # (features_manager/convert_checkpoint/convert_checkpoint.py#L71-90 at 26.0.0, #L109-158 at 26.1.0).
    hf_load_converts: bool = False
    # The models --enable-hf2mg-convert converts (mindspeed_llm/training/initialize.py, the `supported` list).
    hf2mg_models: tuple[str, ...] = ()
    # The refusal of LoRA with mg2hf (26.0.0 convert_checkpoint.py#L86-87; 26.1.0 #L148-149, QLoRA gone).
    lora_mg2hf_message: str = 'Lora and QLora are not supported with enable_mg2hf_convert'
    # 26.0.0+: HA refuses --disable-gloo-group and LoRA (features_manager/high_availability/high_availability.py).
    ha_refuses_gloo_and_lora: bool = False
    # 26.1.0 high_availability.py#L37-38 asks importlib.util.find_spec('mindio_ttp') (a bare AssertionError);
    # before, `import mindio_ttp` failed and was re-raised `from e`.
    ha_find_spec: bool = False
    # convert_ckpt_v2.py raises ValueError("Unrecognized argument : ...") for flags it does not define (26.1.0
    # convert_ckpt_v2.py#L132-134); 2.3.0 and 26.0.0 ignore them (parse_known_args, 2.3.0 #L53).
    v2_rejects_unknown: bool = False
    # 2.3.0+ training_log adds ' core attn ratio (%): ' after the throughput (mindspeed_llm/training/
    # training.py#L1073-1074); 2.2.0's training.py has no such field.
    core_attn_ratio: bool = False
    # 2.3.0+: MindSpeed-LLM's own TTP dump (mindspeed_llm/core/high_availability/tft_dump.py) writes the dying-gasp
    # checkpoint; 2.2.0 leaves saving to mindio_ttp.adaptor (closed source), which the emulator does not model.
    dying_gasp: bool = False
    # HA refuses --swap-attention (2.3.0 high_availability.py#L39-41); 2.2.0 has no such check.
    ha_refuses_swap_attention: bool = False
    # 2.2.0 high_availability.py#L41-47: elastic training imports taskd.python.adaptor.elastic_training first.
    elastic_needs_taskd: bool = False
    # convert_ckpt.py warns that v1 is approaching end-of-life (2.3.0 convert_ckpt.py#L37-39); 2.2.0 does not.
    v1_eol_warning: bool = False
    # preprocess_data.py validate_args accepts --prompt-type with OpenAIInstructionHandler (26.1.0 #L254-264).
    openai_prompt_type: bool = False
    # mindspeed_llm/tasks/checkpoint/ (git ls-tree of the branch head): convert_ckpt.py's plugins (modules with
    # add_arguments) and the other modules its load_plugin may find.
    checkpoint_modules: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())

    @property
    def is_msl(self) -> bool:
        return self.name != 'modellink'

    @property
    def dist_ckpt_core(self) -> bool:
        """core_v0.12.1: --ckpt-format decides use_dist_ckpt (megatron/training/arguments.py#L294-298)."""
        return self.core == 'core_v0.12.1'

    @property
    def saved_word(self) -> str:
        """'  successfully saved checkpoint at|from iteration': core_r0.6.0 megatron/training/checkpointing.py#L323
        says 'at'; MindSpeed-LLM 2.1.0+ (core_r0.8.0 checkpointing.py#L393, 2.3.0 mindspeed_llm/training/
        checkpointing.py#L270) say 'from'."""
        return 'at' if self.core == 'core_r0.6.0' else 'from'

    def loaded_ranks(self, tp_rank: int, tp: int, pp_rank: int, pp: int) -> str:
        """The '[ t .., p .. ]' of 'successfully loaded checkpoint': ranks up to core_r0.8.0 (checkpointing.py#L924),
        'rank+1/size' on core_v0.12.1 (megatron/training/checkpointing.py#L1476-1479)."""
        if self.core == 'core_v0.12.1':
            return f'[ t {tp_rank + 1}/{tp}, p {pp_rank + 1}/{pp} ]'
        return f'[ t {tp_rank}, p {pp_rank} ]'

    @property
    def mcore_default(self) -> bool:
        """2.2.0+: use_mcore_models = not use_legacy_models (features_manager/megatron_basic/training_basic.py#L19);
        ModelLink, 1.0.0 and 2.1.0: legacy unless --use-mcore-models."""
        return self.core == 'core_v0.12.1'


def _flags(name: str) -> str:
    return os.path.join(EMULATOR_ROOT, 'versions', f'mindspeed-llm-{name}.json')


_MSL_EVAL = ('cmmlu', 'mmlu_ppl', 'mmlu', 'gsm8k', 'boolq', 'ceval', 'bbh', 'agieval', 'human_eval', 'needlebench')
# 2.3.0 initialize.py#L231-240.
_HF2MG = ('llama2', 'qwen3', 'qwen3-moe', 'deepseek3', 'glm45-moe', 'bailing_mini', 'qwen3-next', 'seed-oss', 'deepseek32',
          'magistral', 'deepseek2-lite')
_V1_PLUGINS = frozenset({'loader_hf', 'loader_mg', 'saver'})
_V2_MODULES = frozenset({'models', 'convert', 'convert_hf2mg', 'convert_mg2hf', 'model_builder', 'convert_param'})
_CORE_R0_12 = dict(core='core_v0.12.1', args_title='MindSpeed-LLM Arguments', pkg='mindspeed_llm', trainers=('sft', 'dpo'),
                   eval_tasks=_MSL_EVAL, online_convert=True, core_attn_ratio=True, dying_gasp=True,
                   ha_refuses_swap_attention=True, v1_eol_warning=True)

VERSIONS: dict[str, Version] = {
    'modellink': Version('modellink', 'core_r0.6.0', os.path.join(EMULATOR_ROOT, 'modellink_flags.json'),
                         'ModelLink Arguments', 'modellink', trainers=('dpo', 'rm')),
    # 1.0.0 mindspeed_llm/tasks/post_train/launcher.py get_trainer: sft, dpo, rm; evaluation.py#L328-358.
    '1.0.0': Version('1.0.0', 'core_r0.6.0', _flags('1.0.0'), 'MindSpeed-LLM Arguments', 'mindspeed_llm',
                     trainers=('sft', 'dpo', 'rm'),
                     checkpoint_modules=(frozenset({'loader_hf', 'loader_llama2_hf', 'loader_megatron', 'loader_mg', 'saver',
                                                    'saver_megatron'}), frozenset({'models'}))),
    # 2.1.0 mindspeed_llm/tasks/posttrain/launcher.py: sft, dpo, orm, prm, simpo, trl_ppo (the ray_* choices are
    # accepted by the parser but not wired); evaluation.py#L386-431.
    '2.1.0': Version('2.1.0', 'core_r0.8.0', _flags('2.1.0'), 'MindSpeed-LLM Arguments', 'mindspeed_llm',
                     trainers=('sft', 'dpo', 'orm', 'prm', 'simpo', 'trl_ppo'), eval_tasks=_MSL_EVAL,
                     checkpoint_modules=(_V1_PLUGINS, frozenset({'models', 'optim', 'optim_converter', 'loader_optim',
                                                                 'convert_param'}))),
    # 2.2.0 launcher.py#L16-37: sft, dpo, orm, prm, simpo, trl_ppo; no online conversion (no
    # features_manager/convert_checkpoint), no core attn ratio, no tft_dump.py; _add_dummy_args_v2 resets the
    # checkpoint format (arguments.py#L1321-1322, called at #L1539).
    '2.2.0': Version('2.2.0', flags_file=_flags('2.2.0'), resets_ckpt_format=True, save_wrapper_raise_line=187,
                     checkpoint_modules=(_V1_PLUGINS, _V2_MODULES | {'convert_ckpt_mamba2'}),
                     **{**_CORE_R0_12, 'trainers': ('sft', 'dpo', 'orm', 'prm', 'simpo', 'trl_ppo'), 'online_convert': False,
                        'core_attn_ratio': False, 'dying_gasp': False, 'ha_refuses_swap_attention': False,
                        'v1_eol_warning': False}, elastic_needs_taskd=True),
    # 2.3.0 launcher.py#L12-22: sft and dpo only; evaluation.py#L384-432.
    '2.3.0': Version('2.3.0', flags_file=_flags('2.3.0'), resets_ckpt_format=True, save_wrapper_raise_line=189,
                     hf2mg_models=_HF2MG,
                     checkpoint_modules=(_V1_PLUGINS, _V2_MODULES), **_CORE_R0_12),
    # 26.0.0 initialize.py#L231-234 adds mamba2.
    '26.0.0': Version('26.0.0', flags_file=_flags('26.0.0'), resets_ckpt_format=True, save_wrapper_raise_line=191,
                      hf_load_converts=True,
                      hf2mg_models=_HF2MG + ('mamba2',), ha_refuses_gloo_and_lora=True,
                      checkpoint_modules=(_V1_PLUGINS, _V2_MODULES), **_CORE_R0_12),
    # 26.1.0 launcher.py#L13-31: sft (SFTTrainer, LDTSFTTrainer, DeepSeek4SFTTrainer) and dpo; initialize.py#L245-248
    # replaces glm45-moe by glm45-air and glm45; tasks/checkpoint/ gains convert_ckpt_{mamba2,longcat,deepseek4}.
    '26.1.0': Version('26.1.0', flags_file=_flags('26.1.0'), hf_load_converts=True,
                      hf2mg_models=('llama2', 'qwen3', 'qwen3-moe', 'deepseek3', 'glm45-air', 'glm45', 'bailing_mini',
                                    'qwen3-next', 'seed-oss', 'deepseek32', 'magistral', 'deepseek2-lite', 'mamba2'),
                      ha_refuses_gloo_and_lora=True, ha_find_spec=True, v2_rejects_unknown=True,
                      lora_mg2hf_message='Lora is not supported with enable_mg2hf_convert', openai_prompt_type=True,
                      checkpoint_modules=(_V1_PLUGINS, _V2_MODULES | {'convert_ckpt_mamba2', 'convert_ckpt_longcat',
                                                                      'convert_ckpt_deepseek4'}), **_CORE_R0_12),
}

_current = VERSIONS['modellink']


def select(name: str) -> Version:
    """Called by an emulator root's entrypoint before anything else."""
    global _current
    _current = VERSIONS[name]
    return _current


def current() -> Version:
    return _current
