"""The name of :mod:`safe_data.containers.patching` before version 0.2, where imports and
pickles made by earlier versions find it: importing this module gives that one."""

import sys

from .containers import patching

sys.modules[__name__] = patching
