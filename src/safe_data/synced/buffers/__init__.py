"""Buffering for synced collections (:class:`~.buffered_collection.BufferedCollection`
and its file-based implementations); none is imported by default."""

__all__: list = []
