"""Records for the web view, read from a local journal or from a backup store namespace.

Design.  A *source* lists, per writer, its segments in order, each opened only when the
scan reaches it (a local segment is mapped; a stored one is fetched and decompressed with
the server's bound).  :func:`search` merges the writers' frames by (time, writer, seq),
the order of :meth:`safe_data.Journal.records`, or the reverse (newest first: each
writer's segments from its last, a segment's frames read into a list and reversed, one
segment per writer at a time), and filters on what a frame tells
without decoding it (container name, operation, time), so a page decodes only the
records it returns.  A search stops after ``limit`` matches or after ``budget`` seconds
and returns a cursor (the last position it scanned): however large the journal, a page
costs bounded time and memory, and the next page resumes where this one stopped.
A restore reads a local journal as the journal reads itself
(:func:`~safe_data.journal.records.read_records`, through the segment indexes), and a
store by the same scan as a search.

Values are decoded without the journal's key, always: nothing the view reads is ever
unpickled.  A pickled value (an instance of a custom class) reads as
:class:`~safe_data.journal.codec.UnverifiedPickle`, whose repr shows only its size.

Everything here blocks; the routes run it in worker threads.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import os
import time

from ... import _impl
from ...errors import CorruptRecordError
from ...history import ADDING_OPS
from ...journal import format as fmt
from ...journal.journal import to_ns
from ...journal.reader import SegmentView, decode_frame, segment_frames, segment_paths
from ...journal.records import read_records


def parse_segment_name(name: str) -> tuple[str, str] | None:
    """``(segment id, suffix)`` of a segment as records and the page name it: its id, with
    ``.seg`` or ``.open`` (``.open`` while it was written) or without (suffix ``""``);
    None for any other name."""
    for suffix in (fmt.SEALED_SUFFIX, fmt.OPEN_SUFFIX, ""):
        segment_id = name[: len(name) - len(suffix)]
        if name.endswith(suffix) and fmt.is_segment_id(segment_id):
            return segment_id, suffix
    return None


#: operation codes that only add (versioned containers); a search leaves them out unless
#: it names an operation or asks for everything
_ADDING_CODES = frozenset(code for code, (_, op) in fmt.OPS.items() if op in ADDING_OPS)


_BUDGET_CHECK_EVERY = 256  # frames scanned between two looks at the clock


class SourceUnavailable(Exception):
    """The store behind a source failed for now (503)."""


class _BytesView:
    """A sealed segment held in memory (fetched from a store), read like a SegmentView."""

    sealed = True
    live = False

    def __init__(self, name: str, data: bytes):
        self.name = name
        self.data = data
        self.problem = None
        self.header: fmt.SegmentHeader | None
        try:
            self.header = fmt.unpack_segment_header(_impl.crc32c, data)
        except ValueError:
            self.header = None

    def frames(self):
        if self.header is None:
            return
        yield from segment_frames(self.data, _impl.crc32c, self.name, True, self.header)


class JournalSource:
    """The segments of a local journal directory, read only: no key is read or created,
    no segment is recovered (as ``safe-data log`` reads)."""

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)

    def chains(self) -> list[list[tuple[str, object]]]:
        """Per writer, ``[(segment name, opener)]`` in segment order."""
        chains: dict[int, list] = {}
        for path in segment_paths(self.directory):
            name = os.path.basename(path)
            parsed = parse_segment_name(name)
            writer_and_number = None if parsed is None else fmt.parse_segment_id(parsed[0])
            if writer_and_number is not None:
                chains.setdefault(writer_and_number[0], []).append((name, lambda p=path: _map(p)))
        return [sorted(chain, key=lambda entry: entry[0]) for chain in chains.values()]

    def records(self, container, since_ns, until_ns, **selection):
        """Records as :meth:`safe_data.Journal.records` reads them (``selection``: its
        ``nested``, ``nested_ids`` and ``identity``), through the segment indexes, without
        the key: an index is kept in this process's cache only, never read or written
        beside the segment."""
        return read_records(
            self.directory,
            _impl.crc32c,
            None,
            container=container,
            since_ns=since_ns,
            until_ns=until_ns,
            save_indexes=False,
            **selection,
        )

    def segment(self, name: str):
        """The view of one segment by name (with or without its suffix), or None."""
        parsed = parse_segment_name(name)
        if parsed is None:
            return None
        segment_id, suffix = parsed
        suffixes = [suffix] if suffix else [fmt.SEALED_SUFFIX, fmt.OPEN_SUFFIX]
        if suffix == fmt.OPEN_SUFFIX:
            suffixes.append(fmt.SEALED_SUFFIX)  # sealed since it was listed
        for suffix in suffixes:
            view = _map(os.path.join(self.directory, segment_id + suffix))
            if view is not None:
                return view
        return None


def _map(path: str):
    try:
        return SegmentView(path, _impl.crc32c)
    except (FileNotFoundError, IsADirectoryError):
        return None


class StoreSource:
    """The segments of one namespace of a backup store (a DirectoryStore, or a store with
    coroutine methods such as S3Store, called in ``loop`` from the worker thread)."""

    def __init__(self, store, namespace: str, loop: asyncio.AbstractEventLoop, max_segment_bytes: int):
        self.store = store
        self.namespace = namespace
        self.loop = loop
        self.max_segment_bytes = max_segment_bytes

    def _call(self, method: str, *args):
        from ..stores import StoreUnavailable

        fn = getattr(self.store, method)
        try:
            if inspect.iscoroutinefunction(fn):
                return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout=120)
            return fn(*args)
        except StoreUnavailable as exc:
            raise SourceUnavailable(str(exc)) from None

    def chains(self) -> list[list[tuple[str, object]]]:
        chains: dict[int, list] = {}
        for entry in self._call("list", self.namespace):
            segment_id = entry["id"]
            writer_and_number = fmt.parse_segment_id(segment_id)  # a store lists valid ids only
            if writer_and_number is not None:
                chains.setdefault(writer_and_number[0], []).append(
                    (segment_id + fmt.SEALED_SUFFIX, lambda s=segment_id: self._fetch(s))
                )
        return [sorted(chain, key=lambda e: e[0]) for chain in chains.values()]

    def records(self, container, since_ns, until_ns, **_selection):
        # a scan of every segment, by name only: ``selection`` (the containers nested in
        # it, an identity) is not applied
        return _scanned_records(self, container, since_ns, until_ns)

    def segment(self, name: str):
        parsed = parse_segment_name(name)
        if parsed is None or parsed[1] == fmt.OPEN_SUFFIX:
            return None
        return self._fetch(parsed[0])

    def _fetch(self, segment_id: str):
        from ...remote.protocol import InvalidSegment, SegmentTooLarge, decompress_bounded
        from ..stores import NotFound

        try:
            body, _sha256 = self._call("get", self.namespace, segment_id)
            data, _ = decompress_bounded(body, self.max_segment_bytes)
        except (NotFound, InvalidSegment, SegmentTooLarge):
            return None  # deleted meanwhile, or not readable: the scan goes on without it
        return _BytesView(segment_id + fmt.SEALED_SUFFIX, data)


# --- searching -------------------------------------------------------------------------------


def _chain(entries, since_ns, until_ns, newest=False):
    """One writer's frames in order (or newest first), as ((time_ns, writer, seq), view, frame)."""
    for _name, opener in reversed(entries) if newest else entries:
        view = opener()
        if view is None or view.header is None:
            continue
        writer = view.header.writer_id
        frames = view.frames()
        for frame in reversed(list(frames)) if newest else frames:
            if since_ns is not None and frame.time_ns < since_ns:
                continue
            if until_ns is not None and frame.time_ns >= until_ns:
                continue
            yield (frame.time_ns, writer, frame.seq), view, frame


def _merged(source, since_ns, until_ns, newest=False):
    return heapq.merge(
        *(_chain(c, since_ns, until_ns, newest) for c in source.chains()),
        key=lambda item: item[0],
        reverse=newest,
    )


def op_codes(op: str | None) -> frozenset | None:
    """The frame codes a search keeps: ``None`` or ``""`` the discarding operations (as
    ``safe-data log``), ``"*"`` every one, else those of that operation name."""
    if op == "*":
        return None
    if not op:
        return frozenset(fmt.OPS) - _ADDING_CODES
    return frozenset(code for code, (_, name) in fmt.OPS.items() if name == op)


def search(
    source,
    *,
    container: str | None = None,
    prefix: bool = False,
    op: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    after=None,
    newest: bool = False,
    limit: int = 50,
    budget: float = 5.0,
):
    """Up to ``limit`` matching records after position ``after`` in journal order (before
    it if ``newest``: newest first); returns ``(records, next position or None when the
    journal is exhausted, undecodable count)``."""
    name = container.encode("utf-8") if container else None
    codes = op_codes(op)
    if after is not None and newest:
        until_ns = after[0] + 1 if until_ns is None else min(until_ns, after[0] + 1)
    elif after is not None:
        since_ns = after[0] if since_ns is None else max(since_ns, after[0])
    deadline = time.monotonic() + budget
    found, undecodable, scanned = [], 0, 0
    for position, view, frame in _merged(source, since_ns, until_ns, newest):
        if after is not None and (position >= after if newest else position <= after):
            continue
        scanned += 1
        if (codes is None or frame.op in codes) and (
            name is None or (frame.name.startswith(name) if prefix else frame.name == name)
        ):
            try:
                found.append(decode_frame(frame, view.header, view.name, None, False))
            except CorruptRecordError:
                undecodable += 1
            if len(found) >= limit:
                return found, position, undecodable
        if scanned % _BUDGET_CHECK_EVERY == 0 and time.monotonic() > deadline:
            return found, position, undecodable  # a partial page: the client goes on
    return found, None, undecodable


def record_at(source, segment: str, offset: int):
    """The record that starts at byte ``offset`` of ``segment``, or None."""
    view = source.segment(segment)
    if view is None or view.header is None:
        return None
    for frame in view.frames():
        if frame.offset >= offset:
            if frame.offset != offset:
                return None
            try:
                return decode_frame(frame, view.header, view.name, None, False)
            except CorruptRecordError:
                return None
    return None


class ReadOnlyJournal:
    """What :func:`safe_data.restore` and :func:`safe_data.discarded` need of a journal
    (its ``records``, and its ``path`` for its log of forgotten records: None for a
    store, which keeps no such log), over a source, read only and without its key."""

    def __init__(self, source):
        self.source = source
        self.path = source.directory if isinstance(source, JournalSource) else None

    def records(
        self,
        container=None,
        since=None,
        until=None,
        *,
        nested=False,
        nested_ids=False,
        identity=None,
        **_options,
    ):
        return self.source.records(
            container, to_ns(since), to_ns(until), nested=nested, nested_ids=nested_ids, identity=identity
        )


def _scanned_records(source, container: str | None, since_ns, until_ns):
    """``container``'s records in ``source`` (every record if None), by a scan of all its
    frames; records that do not decode are left out."""
    name = None if container is None else container.encode("utf-8")
    for _position, view, frame in _merged(source, since_ns, until_ns):
        if name is not None and frame.name != name:
            continue
        try:
            yield decode_frame(frame, view.header, view.name, None, False)
        except CorruptRecordError:
            continue
