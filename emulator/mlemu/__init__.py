"""mlemu: a standard-library-only emulator of Huawei Ascend ModelLink's command-line interface.

The root scripts (pretrain_gpt.py, preprocess_data.py, ...) are thin wrappers around the
modules in this package. See ../README.md for what is emulated and how to inject faults.
"""
import os

# The emulator directory plays the role of the ModelLink checkout (scripts run from its root),
# so fabricated tracebacks and template paths point into it.
EMULATOR_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
