"""The old name of :mod:`safe_data.server.app` (the backup server application), kept so
that ``from safe_data.upload.server import make_app`` still works.  New code imports from
:mod:`safe_data.server.app`."""

from ..server.app import InvalidSegment, SegmentTooLarge, decompress_bounded, make_app, verify_segment
from ..server.state import AUTHENTICATE_KEY, DEFAULT_MAX_SEGMENT_BYTES, METRICS_KEY, STORE_KEY

__all__ = [
    "make_app",
    "verify_segment",
    "decompress_bounded",
    "SegmentTooLarge",
    "InvalidSegment",
    "STORE_KEY",
    "METRICS_KEY",
    "AUTHENTICATE_KEY",
    "DEFAULT_MAX_SEGMENT_BYTES",
]
