"""The C implementation, whole, under the name it has always had: the record writer and
codec (``journal/_writer_c.pyx``) and the containers (``containers/_containers_c.pyx``).
Importing it raises ImportError where the extension is not built.
"""

from .containers._containers_c import *  # noqa: F403
from .containers._containers_c import __all__ as _containers
from .containers._containers_c import _TrackedSafeList, _TrackedSafeSet  # noqa: F401
from .journal._writer_c import *  # noqa: F403
from .journal._writer_c import __all__ as _writer
from .journal._writer_c import crc32c_is_hardware, encode_value_bytes  # noqa: F401

__all__ = sorted(_writer + _containers)
