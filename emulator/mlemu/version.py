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
    def core_attn_ratio(self) -> bool:
        """2.3.0+ training_log adds ' core attn ratio (%): ' after the throughput (mindspeed_llm/training/
        training.py#L1073-1074)."""
        return self.core == 'core_v0.12.1'

    @property
    def mcore_default(self) -> bool:
        """2.2.0+: use_mcore_models = not use_legacy_models (features_manager/megatron_basic/training_basic.py#L19);
        ModelLink, 1.0.0 and 2.1.0: legacy unless --use-mcore-models."""
        return self.core == 'core_v0.12.1'


def _flags(name: str) -> str:
    return os.path.join(EMULATOR_ROOT, 'versions', f'mindspeed-llm-{name}.json')


_MSL_EVAL = ('cmmlu', 'mmlu_ppl', 'mmlu', 'gsm8k', 'boolq', 'ceval', 'bbh', 'agieval', 'human_eval', 'needlebench')

VERSIONS: dict[str, Version] = {
    'modellink': Version('modellink', 'core_r0.6.0', os.path.join(EMULATOR_ROOT, 'modellink_flags.json'),
                         'ModelLink Arguments', 'modellink', trainers=('dpo', 'rm')),
    # 1.0.0 mindspeed_llm/tasks/post_train/launcher.py get_trainer: sft, dpo, rm; evaluation.py#L328-358.
    '1.0.0': Version('1.0.0', 'core_r0.6.0', _flags('1.0.0'), 'MindSpeed-LLM Arguments', 'mindspeed_llm',
                     trainers=('sft', 'dpo', 'rm')),
    # 2.1.0 mindspeed_llm/tasks/posttrain/launcher.py: sft, dpo, orm, prm, simpo, trl_ppo (the ray_* choices are
    # accepted by the parser but not wired); evaluation.py#L386-431.
    '2.1.0': Version('2.1.0', 'core_r0.8.0', _flags('2.1.0'), 'MindSpeed-LLM Arguments', 'mindspeed_llm',
                     trainers=('sft', 'dpo', 'orm', 'prm', 'simpo', 'trl_ppo'), eval_tasks=_MSL_EVAL),
    # 2.3.0 launcher.py#L12-22: sft and dpo only; evaluation.py#L384-432.
    '2.3.0': Version('2.3.0', 'core_v0.12.1', _flags('2.3.0'), 'MindSpeed-LLM Arguments', 'mindspeed_llm',
                     trainers=('sft', 'dpo'), eval_tasks=_MSL_EVAL, online_convert=True),
    '26.0.0': Version('26.0.0', 'core_v0.12.1', _flags('26.0.0'), 'MindSpeed-LLM Arguments', 'mindspeed_llm',
                      trainers=('sft', 'dpo'), eval_tasks=_MSL_EVAL, online_convert=True),
}

_current = VERSIONS['modellink']


def select(name: str) -> Version:
    """Called by an emulator root's entrypoint before anything else."""
    global _current
    _current = VERSIONS[name]
    return _current


def current() -> Version:
    return _current
