"""The one place that chooses the C extension or the pure-Python twin; it reads the
environment once, at import.

``SAFE_DATA_NO_EXTENSIONS=1`` forces the twin; ``SAFE_DATA_REQUIRE_EXTENSIONS=1`` makes a
missing extension an ImportError instead of a silent fallback.  The choice is made here
for the journal's record writer and codec (``journal/_writer_c`` or ``journal/_writer_py``),
whose ``RecordWriter``, ``crc32c`` and ``decode_values`` the journal reads from this
module; the containers follow it (``containers/__init__.py``).  ``FrameDecoder`` decodes
runs of frames in C for the readers of every record (``journal/bulk.py``); the twin has
none (None), and reads every frame through ``journal/reader.py``.  Every implementation stays
importable under its own name, and ``safe_data._core`` / ``safe_data._core_py`` gather
each whole implementation under the names they have always had.

This module imports nothing above the journal (tests/test_layers.py).
"""

import os

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True

if TYPE_CHECKING:  # type checkers read the stubs of the compiled module (re-exported here)
    from ._core import (  # noqa: F401
        DURABILITY_BATCH,
        DURABILITY_FSYNC,
        DURABILITY_PROCESS,
        RecordWriter,
        crc32c,
        decode_values,
    )

    EXTENSION: bool
    FrameDecoder: type | None
elif os.environ.get("SAFE_DATA_NO_EXTENSIONS", "") not in ("", "0"):
    from .journal._writer_py import *  # noqa: F403

    EXTENSION = False
    FrameDecoder = None
else:
    try:
        from .journal._records_c import FrameDecoder
        from .journal._writer_c import *  # noqa: F403

        EXTENSION = True
    except ImportError:
        if os.environ.get("SAFE_DATA_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise
        from .journal._writer_py import *  # noqa: F403

        EXTENSION = False
        FrameDecoder = None
