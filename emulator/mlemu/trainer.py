"""trainer.py (ModelLink d4feda79): AutoTrainer, the entry point of ModelLink's DPO.

trainer.py#L6-8: `trainer = AutoTrainer(); trainer.train()`. AutoTrainer.__init__ (modellink/tasks/trainer/
launcher.py#L14-22) runs initialize_megatron() with the parser pretrain_gpt.py has (reference/modellink/flags.json
parser_composition), then picks DPOTrainer for `--stage dpo` and BaseTrainer for anything else (no --stage, or
`--stage rm`): no 'Unknown Stage' as in MindSpeed-LLM. BaseTrainer (modellink/tasks/trainer/base.py) trains as
pretrain_gpt.py does, except that its dataset provider (modellink/tasks/trainer/utils.py#L52) builds the packed
dataset for `--is-instruction-dataset or --is-pairwise-dataset`. DPOTrainer (modellink/tasks/rl/dpo.py) then loads a
frozen reference model (mlemu/dpo.py) and logs 'rewards/accuracies' before 'lm loss'.
"""
from . import pretrain

ENTRYPOINT = 'trainer.py'


def get_trainer(rt):
    return 'dpo' if rt.args.stage == 'dpo' else 'base'


def main(argv=None):
    return pretrain.main(argv, entrypoint=ENTRYPOINT, trainer=get_trainer)
