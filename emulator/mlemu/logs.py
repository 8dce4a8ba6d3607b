"""Python logging configured the way ModelLink ends up with it.

Importing ModelLink runs megatron/training/training.py, whose
`logging.basicConfig(handlers=[CustomHandler()], level=logging.INFO)` wins over the later
basicConfig calls of the ModelLink modules. ModelLink patches CustomHandler.emit to write with
tqdm.write (stdout) on rank 0 only (or when torch.distributed is not initialized). Result:
`LEVEL:logger-name:message` lines on stdout -- for preprocess_data.py and convert_ckpt.py too.
"""
import logging
import sys

from . import version


class _Enabled(logging.Filter):
    def __init__(self, enabled):
        super().__init__()
        self.enabled = enabled

    def filter(self, record):
        return self.enabled


class _MindSpeedNames(logging.Filter):
    """Under a MindSpeed-LLM root the loggers are named after its package (mindspeed_llm.tasks...)."""

    def filter(self, record):
        if record.name.startswith('modellink.'):
            record.name = 'mindspeed_llm.' + record.name[len('modellink.'):]
        return True


def setup(enabled=True):
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_Enabled(enabled))
    if version.current().is_msl:
        handler.addFilter(_MindSpeedNames())
    logging.basicConfig(handlers=[handler], level=logging.INFO)
