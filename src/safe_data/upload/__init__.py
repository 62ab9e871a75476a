"""Remote backup: the uploader, its sinks and the backup server (docs/remote.md).

Nothing here is imported by ``import safe_data``: aiohttp costs a third of a second to
import, so ``safe_data.Uploader`` and the sinks are loaded on first use.
"""
