"""A browsable view of discarded values, served by ``safe-data serve`` under ``/ui/``
(docs/web.md): search a local journal or a backup store namespace by container, time and
operation, see a record with its caller, download a container's restored contents.

:func:`mount` adds it to a :func:`~safe_data.upload.server.make_app` application.  Needs
aiohttp (the ``upload`` extra).
"""

from .routes import make_ui_app, mount

__all__ = ["make_ui_app", "mount"]
