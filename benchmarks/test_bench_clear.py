"""Group 3: ``clear()`` of big lists against the raw limit, measured in the same run.

One ``clear()`` journals the whole list as one record: encode, lz4-compress (payloads of
512 bytes or more), crc32c, copy into the mmap'd segment.  The rows of each group:

``c`` / ``twin``   ``SafeList.clear()`` (the list is refilled from the same value objects
                   in ``setup``, outside the timing: clear() deallocates nothing)
``builtin``        ``list.clear()`` on a plain list (no journal), for scale
``raw-pickle``     ``pickle.dumps(values, protocol=5)`` + ``lz4.block.compress(...,
                   store_size=True)`` + copy into an mmap of a preallocated file, on a
                   fresh plain-list copy of the values per round (built in ``setup``,
                   like the list clear() empties, so both see the same malloc history)
``raw-codec``      the same with ``safe_data._core.encode_value_bytes(values, key)`` (the
                   journal's own encoder, which returns a bytes copy) instead of pickle

No container, no journal, no checksum in the raw rows.  Like the journal, the raw sink
appends to fresh (fallocated, never touched) pages of a 256 MiB file, so both pay the
same first-touch page faults.  ``raw_*_over_clear`` = raw time / clear time (mean rounds):
>= 1 means clear() is at least as fast as the raw pipeline.

Cross-check: the cost of those page faults drifts with the kernel's state (readahead,
writeback) and the cost of big buffers with malloc's (its mmap threshold adapts), so rows
timed one after the other can disagree by several ms for the same work.
The ``c`` test therefore also times INTERLEAVED rounds of (clear, raw-codec, raw-pickle),
alternating within one loop, and stores ``interleaved_raw_codec_over_clear`` /
``interleaved_raw_pickle_over_clear`` (ratios of the mean times) in its extra_info.
"""

import mmap
import os
import pickle
import statistics
import time

import lz4.block
import pytest
from benchutil import SEGMENT_SIZE, container_factory, records_written, run

from safe_data import _core

KEY = bytes(32)
RECORD = {"id": 0, "name": "item-000123", "price": 9.99, "qty": 3, "active": True}

DATASETS = {  # id: (group label, builder)
    "ints": ("1M small ints", lambda: list(range(1_000_000))),
    "strs": ("1M short strs", lambda: [f"item-{i:06d}" for i in range(1_000_000)]),
    "dicts": (
        "100k 5-field dicts",
        lambda: [dict(RECORD, id=i, name=f"item-{i:06d}") for i in range(100_000)],
    ),
}
VARIANTS = ["builtin", "c", "twin", "raw-pickle", "raw-codec"]
ROUNDS = {"builtin": 10, "c": 30, "twin": 3, "raw-pickle": 30, "raw-codec": 30}
INTERLEAVED_ROUNDS = 15

_cache = {}


def dataset(name):
    if name not in _cache:
        _cache.clear()  # keep one dataset alive at a time
        _cache[name] = DATASETS[name][1]()
    return _cache[name]


class RawSink:
    """Appends bytes to an mmap of a preallocated file; a new file when it is full."""

    def __init__(self, directory, size=SEGMENT_SIZE):
        self.directory, self.size, self.count = directory, size, 0
        self.map = None
        self._open()

    def _open(self):
        if self.map is not None:
            self.close()
        self.count += 1
        self.path = os.path.join(self.directory, f"raw-{self.count}.bin")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.posix_fallocate(self.fd, 0, self.size)
        self.map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.pos = 0

    def write(self, data):
        n = len(data)
        if self.pos + n > self.size:
            self._open()
        self.map[self.pos : self.pos + n] = data
        self.pos += n

    def close(self):
        self.map.close()
        os.close(self.fd)
        os.unlink(self.path)  # pytest keeps its tmp dirs: do not leave 256 MiB files behind


def raw_pickle(sink, values):
    sink.write(lz4.block.compress(pickle.dumps(values, protocol=5), store_size=True))


def raw_codec(sink, values):
    sink.write(lz4.block.compress(_core.encode_value_bytes(values, KEY), store_size=True))


def clear(x):
    x.clear()


def interleaved(new, values, directory):
    """Mean times of clear / raw-codec / raw-pickle measured in alternating rounds."""
    sink = RawSink(directory)
    times = {"clear": [], "raw-codec": [], "raw-pickle": []}
    try:
        for _ in range(INTERLEAVED_ROUNDS + 1):  # the first round is a warm-up
            for name, fn in (("clear", None), ("raw-codec", raw_codec), ("raw-pickle", raw_pickle)):
                if fn is None:
                    x = new("list", values)
                    t0 = time.perf_counter()
                    x.clear()
                else:
                    copy = list(values)
                    t0 = time.perf_counter()
                    fn(sink, copy)
                times[name].append(time.perf_counter() - t0)
    finally:
        sink.close()
    return {name: statistics.mean(ts[1:]) for name, ts in times.items()}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("data", list(DATASETS))
def test_clear(benchmark, journals, tmp_path, data, variant):
    values = dataset(data)
    group = f"3 clear: {DATASETS[data][0]}"
    common = dict(group=group, variant=variant, ops=1, rounds=ROUNDS[variant], items=len(values))
    if variant.startswith("raw-"):
        sink = RawSink(str(tmp_path))
        try:
            # a fresh copy per round, like the list clear() empties: same allocation history
            run(
                benchmark,
                raw_pickle if variant == "raw-pickle" else raw_codec,
                setup=lambda: ((sink, list(values)), {}),
                **common,
            )
        finally:
            sink.close()
        return
    new = container_factory(variant, journals)
    run(benchmark, clear, setup=lambda: ((new("list", values),), {}), **common)
    if variant != "builtin":
        # one record per clear(); --benchmark-disable makes a single call
        assert records_written(new) == (ROUNDS[variant] + 1 if benchmark.enabled else 1)
    if variant == "c" and benchmark.enabled:
        t = interleaved(new, values, str(tmp_path))
        benchmark.extra_info.update(
            interleaved_raw_codec_over_clear=round(t["raw-codec"] / t["clear"], 3),
            interleaved_raw_pickle_over_clear=round(t["raw-pickle"] / t["clear"], 3),
        )
