"""The one place that chooses the C extension or the pure-Python twin.

``SAFE_DATA_NO_EXTENSIONS=1`` forces the twin; ``SAFE_DATA_REQUIRE_EXTENSIONS=1`` makes a
missing extension an ImportError instead of a silent fallback.  Both modules are always
importable under their own names (``safe_data._core``, ``safe_data._core_py``).
"""

import os
TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True

if TYPE_CHECKING:  # type checkers read the stubs of the compiled module
    from ._core import *  # noqa: F403

    EXTENSION: bool
elif os.environ.get("SAFE_DATA_NO_EXTENSIONS", "") not in ("", "0"):
    from ._core_py import *  # noqa: F403
    EXTENSION = False
else:
    try:
        from ._core import *  # noqa: F403
        EXTENSION = True
    except ImportError:
        if os.environ.get("SAFE_DATA_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise
        from ._core_py import *  # noqa: F403
        EXTENSION = False
