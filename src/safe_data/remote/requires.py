"""aiohttp, or an error that says how to install it.

The remote backup (HTTP and S3 sinks, the server) needs aiohttp, which only the
``upload`` extra installs.  Whatever needs it imports it through :func:`aiohttp`, at
once, so that a missing extra is one clear error when the sink or server is created,
rather than a traceback, or an uploader that retries for ever.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

INSTALL = "pip install 'safe_data[upload]'"


def aiohttp(what: str):
    """Import and return aiohttp; MissingDependencyError naming ``what`` if it is absent."""
    try:
        import aiohttp as module
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs aiohttp, which is not installed: {INSTALL}") from exc
    return module
