"""A browsable view of discarded values, served by ``safe-data serve`` under ``/ui/``
(docs/web.md): search a local journal or a backup store namespace by container, time and
operation, see a record with its caller, download a container's restored contents.

``make_app(..., web_view=True)`` (:func:`~safe_data.server.app.make_app`) mounts it;
:func:`mount` adds it to an application made without.  Needs aiohttp (the ``upload``
extra).
"""

from .routes import make_ui_app, mount

__all__ = ["make_ui_app", "mount"]
