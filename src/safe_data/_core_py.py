"""The pure-Python twin, whole, under the name it has always had: the record writer
(``journal/_writer_py.py``, with the codec of ``journal/codec.py``) and the containers
(``containers/_containers_py.py``).
"""

from .containers._containers_py import *  # noqa: F403
from .containers._containers_py import __all__ as _containers
from .containers._containers_py import _TrackedSafeList, _TrackedSafeSet  # noqa: F401
from .journal._writer_py import *  # noqa: F403
from .journal._writer_py import __all__ as _writer

__all__ = sorted(_writer + _containers)
