#!/usr/bin/env python3
"""MindSpeed-LLM 26.1.0 stand-in for its evaluation.py (see emulator/README.md, Emulator roots)."""
import os
import sys

# Import mlemu from the emulator directory (two levels up), whatever the working directory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mlemu import version  # noqa: E402

version.select('26.1.0')

from mlemu.evaluation import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
