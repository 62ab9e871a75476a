"""The journal: segment files of checksummed frames (``format.py`` is the spec in code).

Public names are re-exported by ``safe_data``; this package imports nothing itself so
that the writers can use ``format`` and ``codec`` without a cycle.
"""
