#!/usr/bin/env python3
"""ModelLink emulator stand-in for ModelLink's trainer.py (AutoTrainer: --stage dpo; see README.md in this directory)."""
import os
import sys

# Import mlemu from next to this file, whatever the working directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlemu.trainer import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
