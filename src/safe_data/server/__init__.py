"""The backup server (docs/remote.md): ``safe-data serve``'s aiohttp application
(:mod:`.app`, with its keys in :mod:`.state`), its stores (:mod:`.stores`) and the web
view (:mod:`.web`, docs/web.md)."""
