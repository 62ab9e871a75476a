"""The name of :mod:`safe_data.containers._support` before version 0.2, where imports and
pickles made by earlier versions find it: importing this module gives that one."""

import sys

from .containers import _support

sys.modules[__name__] = _support
