"""posttrain_gpt.py (MindSpeed-LLM): fine-tuning through AutoTrainer, `--stage sft|dpo|...`.

posttrain_gpt.py#L6-8: `trainer = AutoTrainer(); trainer.train()`. AutoTrainer runs initialize_megatron, then
get_trainer(args.stage) (2.3.0 mindspeed_llm/tasks/posttrain/launcher.py#L12-22): a stage the release does not wire
(mlemu/version.py trainers; also no --stage at all) logs 'Unknown Stage: <stage>' and returns None, and train()
fails with AttributeError. SFT and DPO then train as pretrain_gpt.py does, except that the data is the packed
instruction (--is-instruction-dataset) or pairwise (--is-pairwise-dataset) dataset (posttrain/utils.py#L61-67), and
DPO's training line carries 'rewards/accuracies' before 'lm loss' (posttrain/dpo/dpo_trainer.py#L355, #L165).
"""
import sys

from . import msl, pretrain, version

ENTRYPOINT = 'posttrain_gpt.py'
EMULATED = ('sft', 'dpo')


def get_trainer(rt):
    stage = rt.args.stage
    if stage not in version.current().trainers:
        msl.unknown_stage(rt, stage)
    if stage not in EMULATED:
        sys.stderr.write(f'[mlemu] posttrain_gpt.py --stage {stage}: MindSpeed-LLM {version.current().name} has this '
                         f'trainer, the emulator does not (only sft and dpo)\n')
        sys.exit(3)
    return stage


def main(argv=None):
    return pretrain.main(argv, entrypoint=ENTRYPOINT, trainer=get_trainer)
