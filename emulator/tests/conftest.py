"""pytest setup for the emulator's own tests (run from the repository root: python3 -m pytest -q emulator/tests).

The emulator is imported as its scripts import it: `mlemu` from the emulator directory, and `torchrun`
(a script without a .py suffix) loaded from its file.
"""

import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

import pytest

EMULATOR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(EMULATOR)
if EMULATOR not in sys.path:
    sys.path.insert(0, EMULATOR)

# Variables the emulator reads; a test sets the ones it needs (monkeypatch), the rest are unset.
EMULATOR_ENV = (
    'MLEMU_FAULTS', 'MLEMU_SLOWDOWN', 'MLEMU_TIME_SCALE', 'MLEMU_ITER_TIME_MS', 'MLEMU_MARKER_DIR',
    'LINKFLOW_BENCH_CASE', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'GROUP_RANK',
    'MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_USE_AGENT_STORE',
    'PET_NNODES', 'PET_NPROC_PER_NODE', 'PET_NODE_RANK', 'PET_MASTER_ADDR', 'PET_MASTER_PORT',
    'MLEMU_MINDIO_TTP', 'MLEMU_TASKD', 'HIGH_AVAILABILITY',
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EMULATOR_ENV:
        monkeypatch.delenv(name, raising=False)


def load_torchrun() -> ModuleType:
    """The torchrun script as a module (its main() only runs as __main__)."""
    path = os.path.join(EMULATOR, 'torchrun')
    loader = importlib.machinery.SourceFileLoader('mlemu_torchrun', path)
    spec = importlib.util.spec_from_loader('mlemu_torchrun', loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
