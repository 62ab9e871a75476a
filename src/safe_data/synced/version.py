"""The version, where ``synced_collections.version`` has it: that of safe_data."""

from .. import __version__

__all__ = ["__version__"]
