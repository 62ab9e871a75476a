"""The name of :mod:`safe_data.containers.protect` before version 0.2, where imports and
pickles made by earlier versions find it: importing this module gives that one."""

import sys

from .containers import protect

sys.modules[__name__] = protect
