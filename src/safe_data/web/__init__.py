"""The old name of :mod:`safe_data.server.web` (the web view), kept so that
``from safe_data.web import mount`` still works.  New code imports from
:mod:`safe_data.server.web`, or asks :func:`~safe_data.server.app.make_app` for it
(``web_view=True``)."""

from ..server.web import make_ui_app, mount

__all__ = ["make_ui_app", "mount"]
