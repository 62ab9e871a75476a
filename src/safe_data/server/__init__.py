"""The backup server: ``safe-data serve``'s aiohttp application, its stores and the web view (docs/remote.md)."""
