"""Backends of synced collections; none is imported by default (import the one you use,
e.g. ``from safe_data.synced.backends.collection_json import JSONDict``)."""

__all__: list = []
