"""Helpers of the safe_data benchmark suite (see benchmarks/README.md).

* Implementations ("variants") compared side by side in every group:

  ``builtin``     the builtin ``list``/``dict``/``set`` (no journal)
  ``pysubclass``  an empty pure-Python subclass (``class PyList(list): pass``): the price
                  any subclass pays (no specialised bytecodes for non-exact builtins)
  ``c``           ``safe_data._core`` containers on a journal with the C ``RecordWriter``
                  (what ``import safe_data`` gives when the extension is built)
  ``twin``        ``safe_data._core_py`` containers on a journal with the pure-Python
                  ``_core_py.RecordWriter``: exactly what ``SAFE_DATA_NO_EXTENSIONS=1``
                  builds (the journal is opened with ``_impl.RecordWriter``/``_impl.crc32c``
                  pointed at the twin for the duration of ``Journal(...)``)
  ``twin-cw``     ``_core_py`` containers on a journal with the *C* writer (splits the
                  twin's cost into containers vs writer; discard group only)

* Every benchmark goes through :func:`run`, which sets the group, the number of
  operations per round (``ops``) and, once timed, ``ns_per_op``/``ops_per_s`` (from the
  group's statistic, see below) and ``ns_per_op_min/median/mean`` in ``benchmark.extra_info``.
* At the end of the session :func:`compute_ratios` adds the cross-row ratios to each
  row's ``extra_info`` (before pytest-benchmark writes ``--benchmark-json``/``--benchmark-save``
  files) and :func:`print_summary` prints them, with the project's targets, after
  pytest-benchmark's own table.  ``--bench-summary=PATH`` also writes them as JSON.

Statistic: each row is summarised by one round statistic (STAT_BY_GROUP), divided by
``ops``.  CPU-only groups (0, 1: reads and adds; 17's reads; 18: constructors) use the
fastest round (``min``), and so does 20 (encryption): on a shared 2-core machine the other
statistics mostly measure the neighbours.  Every group
that writes to a journal or an mmap uses the ``mean`` round: the first write to a fresh
page of the mapped segment costs a page fault whose price varies from round to round
(kernel readahead zero-fills pages ahead, so one round often prepays the next), and only
the mean is the long-run throughput.  ``import_ms`` is a difference of medians.
"""

from __future__ import annotations

import os
import shutil

import safe_data as sd
from safe_data import _core as C
from safe_data import _core_py as P
from safe_data import _impl

SEGMENT_SIZE = 256 << 20  # large: rotations must not dominate
STAT_BY_GROUP = (
    ("0 ", "min"),
    ("1 ", "min"),
    ("17 watch: read", "min"),
    ("18 ", "min"),
    ("20 ", "min"),
)  # group prefix -> statistic
DEFAULT_STAT = "mean"


def stat_for(group: str) -> str:
    for prefix, stat in STAT_BY_GROUP:
        if group.startswith(prefix):
            return stat
    return DEFAULT_STAT


class PyList(list):
    pass


class PyDict(dict):
    pass


class PySet(set):
    pass


# --- journals and containers ---------------------------------------------------------------


def open_journal(path, impl: str = "c", **options) -> sd.Journal:
    """A Journal whose writer is the C one (impl="c") or the pure-Python twin ("twin")."""
    options.setdefault("segment_size", SEGMENT_SIZE)
    if impl == "c":
        journal = sd.Journal(path, **options)
        assert type(journal._writer) is C.RecordWriter
        return journal
    assert impl == "twin", impl
    saved = _impl.RecordWriter, _impl.crc32c
    _impl.RecordWriter, _impl.crc32c = P.RecordWriter, P.crc32c  # as SAFE_DATA_NO_EXTENSIONS=1
    try:
        journal = sd.Journal(path, **options)
    finally:
        _impl.RecordWriter, _impl.crc32c = saved
    assert type(journal._writer) is P.RecordWriter
    return journal


class Journals:
    """Opens journals in one (per-test) directory; closes and deletes them afterwards."""

    def __init__(self, root):
        self.root = str(root)
        self.opened: list[sd.Journal] = []

    def open(self, impl: str = "c", **options) -> sd.Journal:
        path = os.path.join(self.root, f"journal-{len(self.opened)}-{impl}")
        journal = open_journal(path, impl, **options)
        self.opened.append(journal)
        return journal

    def close(self):
        for journal in self.opened:
            journal.close()
        shutil.rmtree(self.root, ignore_errors=True)


_CLASSES = {
    "builtin": {"list": list, "dict": dict, "set": set},
    "pysubclass": {"list": PyList, "dict": PyDict, "set": PySet},
    "c": {"list": C.SafeList, "dict": C.SafeDict, "set": C.SafeSet},
    "twin": {"list": P.SafeList, "dict": P.SafeDict, "set": P.SafeSet},
    "twin-cw": {"list": P.SafeList, "dict": P.SafeDict, "set": P.SafeSet},
}
_WRITER = {"c": "c", "twin": "twin", "twin-cw": "c"}


def container_factory(variant: str, journals: Journals, **journal_options):
    """``new(kind, data=())`` building the ``variant``'s list/dict/set; safe containers get
    one journal (opened here) per factory."""
    classes = _CLASSES[variant]
    if variant not in _WRITER:
        return lambda kind, data=(): classes[kind](data)
    journal = journals.open(_WRITER[variant], **journal_options)

    def new(kind, data=()):
        return classes[kind](data, name=f"bench-{kind}", journal=journal)

    new.journal = journal
    return new


def records_written(new) -> int:
    """Records the factory's journal has written so far (0 for unjournaled variants)."""
    journal = getattr(new, "journal", None)
    return 0 if journal is None else journal._writer.seq


# --- sealed segments to upload (groups 8 and 9) ---------------------------------------------

N_SEGMENTS = 24
UPLOAD_SEGMENT_SIZE = 1 << 20
_UPLOAD_VALUE_SIZE = 64 << 10


def make_sealed_segments(where) -> tuple[list[str], int]:
    """N_SEGMENTS sealed ~1 MiB segments (and the key) in a new journal directory
    ``where``: 64 KiB random ``bytes`` popped out of a C ``SafeList`` (random, so zstd
    barely shrinks them).  Return (segment file names, their total size)."""
    rnd = os.urandom(_UPLOAD_VALUE_SIZE * (N_SEGMENTS * (UPLOAD_SEGMENT_SIZE // _UPLOAD_VALUE_SIZE) + 8))
    values = [rnd[i : i + _UPLOAD_VALUE_SIZE] for i in range(0, len(rnd), _UPLOAD_VALUE_SIZE)]
    with sd.Journal(where, segment_size=UPLOAD_SEGMENT_SIZE) as journal:
        lst = C.SafeList(values, name="blobs", journal=journal)
        while len(lst):
            lst.pop()
            if sum(n.endswith(".seg") for n in os.listdir(where)) > N_SEGMENTS:
                break  # the (N+1)th is the active one: N are sealed
    names = sorted(n for n in os.listdir(where) if n.endswith(".seg"))
    for extra in names[N_SEGMENTS:]:
        os.unlink(os.path.join(where, extra))
    names = names[:N_SEGMENTS]
    sizes = [os.path.getsize(os.path.join(where, n)) for n in names]
    assert len(names) == N_SEGMENTS and min(sizes) > UPLOAD_SEGMENT_SIZE * 0.8, sizes
    return names, sum(sizes)


class ShippingRounds:
    """Benchmark rounds of an uploader: ``setup`` copies the source segments into a new
    journal directory and builds ``make_uploader(journal, round number)``; ``ship`` (the
    timed part) runs it from ``start()`` to the return of ``flush()``.  ``check()``
    asserts that every round shipped every segment without an error."""

    def __init__(self, source, tmp_path, make_uploader):
        self.where, self.names, _ = source
        self.tmp_path = tmp_path
        self.make_uploader = make_uploader
        self.round_no = 0
        self.journal = self.uploader = None
        self.done: list[dict] = []

    def setup(self):
        self._finish()
        target = os.path.join(self.tmp_path, f"journal-{self.round_no}")
        os.mkdir(target)
        for name in self.names + ["key"]:
            shutil.copyfile(os.path.join(self.where, name), os.path.join(target, name))
        self.journal = sd.Journal(target, segment_size=UPLOAD_SEGMENT_SIZE)
        uploader = self.make_uploader(self.journal, self.round_no)
        self.round_no += 1
        return (uploader,), {}

    def ship(self, uploader):
        self.uploader = uploader.start()
        uploader.flush(timeout=120)

    def _finish(self):
        if self.uploader is not None:
            self.done.append(self.uploader.stats())
            self.uploader.close()
            self.uploader = None
        if self.journal is not None:
            self.journal.close()
            shutil.rmtree(self.journal.path, ignore_errors=True)
            self.journal = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._finish()

    def check(self):
        assert self.done
        for stats in self.done:
            assert stats["acked"] == N_SEGMENTS and stats["rejected"] == 0 and stats["errors"] == 0, stats


def benchmark_uploader(benchmark, source, tmp_path, make_sink, *, group: str, rounds: int, concurrency: int):
    """Time ``Uploader(make_sink(round number), journal, concurrency=...)`` shipping a
    fresh copy of ``source`` per round; return the raw MB/s (None when not timed)."""
    from safe_data.remote.uploader import Uploader

    def make_uploader(journal, round_no):
        return Uploader(make_sink(round_no), journal, seal_every=None, concurrency=concurrency)

    with ShippingRounds(source, tmp_path, make_uploader) as shipping:
        run(
            benchmark,
            shipping.ship,
            group=group,
            variant="uploader",
            ops=N_SEGMENTS,
            rounds=rounds,
            setup=shipping.setup,
            concurrency=concurrency,
        )
    shipping.check()
    return mb_per_s(benchmark, source[2]) if benchmark.enabled else None


def mb_per_s(benchmark, raw_bytes) -> float:
    """Raw segment MB (10^6 bytes) per second of the mean round, stored in extra_info."""
    mb = round(raw_bytes / benchmark.stats.stats.mean / 1e6, 1)
    benchmark.extra_info.update(mb_per_s=mb, raw_bytes=raw_bytes)
    return mb


# --- running and recording -------------------------------------------------------------------


def run(
    benchmark,
    target,
    *,
    group: str,
    variant: str,
    ops: int,
    rounds: int,
    args=(),
    setup=None,
    warmup_rounds: int = 1,
    **info,
):
    """benchmark.pedantic(...) with the suite's bookkeeping in extra_info."""
    benchmark.group = group
    benchmark.extra_info.update(variant=variant, ops=ops, **info)
    if setup is not None:
        result = benchmark.pedantic(
            target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1
        )
    else:
        result = benchmark.pedantic(
            target, args=args, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1
        )
    if benchmark.stats is None:  # --benchmark-disable: the target ran once, untimed
        return result
    stats = benchmark.stats.stats
    t = per_op(benchmark.stats)
    benchmark.extra_info.update(
        stat=stat_for(group),
        ns_per_op=round(t * 1e9, 2),
        ops_per_s=round(1 / t),
        **{
            f"ns_per_op_{name}": round(getattr(stats, name) / ops * 1e9, 2)
            for name in ("min", "median", "mean")
        },
    )
    return result


def per_op(meta) -> float:
    """Seconds per operation of one benchmark (its Metadata), from its group's statistic."""
    return getattr(meta.stats, stat_for(meta.group)) / meta.extra_info["ops"]


# --- ratios ------------------------------------------------------------------------------------

#: (group prefix, variant, extra_info key, comparison, limit, what) -- checked on C rows
TARGETS = [
    ("13 read-back", "records", "read_over_write", ">=", 1.0, "records() >= the single-discard write rate"),
    (
        "13 read-back",
        "record_batches",
        "read_over_write",
        ">=",
        1.0,
        "record_batches() >= the single-discard write rate",
    ),
    ("12 history", "300k", "x_fewest", "<=", 3.0, "history() with 300k others <= 3x with 3k"),
    ("12 restore", "300k", "x_fewest", "<=", 3.0, "restore() with 300k others <= 3x with 3k"),
    (
        "14 restore_all: 100 containers",
        "all",
        "x_each",
        "<=",
        1.0,
        "restore_all of 100 containers <= restore() of each",
    ),
    ("14 transaction", "op in a transaction", "x_op", "<=", 3.0, "an op inside a transaction <= 3x outside"),
    ("14 transaction", "transaction of 1 op", "x_op", "<=", 30.0, "a transaction of 1 op <= 30 ops"),
    ("15 popitem", "1M", "x_1k", "<=", 2.0, "popitem() at 1M entries <= 2x at 1k"),
    ("16 update: 1000 new keys", "c", "x_builtin", "<=", 2.0, "update() with 1000 new keys <= 2x builtin"),
    ("17 watch: read d[k]", "watched", "x_builtin", "<=", 1.05, "reads of a watched dict <= 1.05x builtin"),
    ("18 construct: ", "c", "x_builtin", "<=", 3.0, "a constructor <= 3x the builtin's"),
    *(
        (
            "19 scale-out",
            f"servers-{n}",
            "servers_over_bare",
            ">=",
            0.8,
            f"{n} client(s) via servers >= 0.8x bare S3",
        )
        for n in (1, 2, 4, 8)
    ),
    ("7 restore", "discarded", "ops_per_s", ">=", 1e6, "discarded() >= 1M values/s"),
    ("7 restore", "restore", "ops_per_s", ">=", 1e6, "restore() >= 1M values/s"),
    ("1 add: list.append", "c", "x_builtin", "<=", 1.2, "append <= 1.2x builtin time"),
    ("1 read: dict d[k]", "c", "x_builtin", "<=", 1.3, "d[k] <= 1.3x builtin time"),
    ("2 discard: list.pop() small int", "c", "ops_per_s", ">=", 2e6, "pop small ints >= 2M ops/s"),
    ("2 discard: list.pop() 5-field dict", "c", "ops_per_s", ">=", 1e6, "pop 5-field dicts >= 1M ops/s"),
    ("3 clear", "c", "raw_pickle_over_clear", ">=", 0.8, "clear() >= 80% of raw pickle+lz4+mmap speed"),
    ("3 clear", "c", "raw_codec_over_clear", ">=", 0.8, "clear() >= 80% of raw codec+lz4+mmap speed"),
    ("3 clear", "c", "interleaved_raw_pickle_over_clear", ">=", 0.8, "same, pickle, interleaved rounds"),
    ("3 clear", "c", "interleaved_raw_codec_over_clear", ">=", 0.8, "same, codec, interleaved rounds"),
    ("4 durability", "batch", "batch_over_process", "<=", 1.5, "batch within 1.5x of process"),
    ("4 durability", "batch", "interleaved_batch_over_process", "<=", 1.5, "same, interleaved rounds"),
    ("4 durability: fsync", "4 threads", "speed_over_one_thread", ">=", 2.0, "fsync: 4 threads >= 2x 1"),
    ("4 durability: fsync", "8 threads", "speed_over_one_thread", ">=", 3.0, "fsync: 8 threads >= 3x 1"),
    (
        "4 durability: fsync",
        "4 threads",
        "interleaved_speed_over_one_thread",
        ">=",
        2.0,
        "same, 4 threads, interleaved rounds",
    ),
    (
        "4 durability: fsync",
        "8 threads",
        "interleaved_speed_over_one_thread",
        ">=",
        3.0,
        "same, 8 threads, interleaved rounds",
    ),
    ("5 footprint: import", "import safe_data", "import_ms", "<=", 30, "import safe_data <= 30 ms"),
    ("5 footprint: heap", "c", "heap_current_growth_kib", "<=", 1024, "heap growth <= 1 MiB / 1M discards"),
    ("5 footprint: disk", "c compact", "disk_bytes_per_discard", "<=", 16, "<= 16 bytes per small discard"),
    ("8 upload: ", "uploader", "upload_over_bare", ">=", 0.8, "upload >= 80% of bare aiohttp"),
    (
        "8 upload: ",
        "uploader",
        "upload_over_bare_durable",
        ">=",
        0.8,
        "upload >= 80% of bare aiohttp + durable store",
    ),
    ("9 S3: ", "uploader", "upload_over_aiobotocore", ">=", 0.8, "S3 upload >= 80% of bare aiobotocore"),
    (
        "8 upload: ",
        "uploader",
        "uploader_over_no_uploader",
        "<=",
        1.1,
        "pop() with an uploader running <= 1.1x without",
    ),
    (
        "10 atomic: commit() 10k-entry dict, json",
        "safe_data",
        "x_atomic_store",
        "<=",
        1.0,
        "atomic json commit() <= atomic_store's time",
    ),
    (
        "11 synced: JSONDict d[k] = v, unbuffered",
        "safe_data",
        "speed_over_synced_collections",
        ">=",
        2.0,
        "synced JSON writes >= 2x synced_collections",
    ),
    (
        "11 synced: MemoryBufferedJSONDict",
        "safe_data",
        "speed_over_synced_collections",
        ">=",
        1.0,
        "buffered synced writes >= synced_collections",
    ),
]


def compute_ratios(benchmarks) -> None:
    """Add the cross-row ratios of each group to the rows' extra_info.

    * ``x_builtin``: time per op / builtin's time per op (every group with a builtin row);
      ``net_x_builtin`` the same after subtracting the bare ``for`` loop's time per op
      (rows flagged ``loop_overhead``, with the calibration row of the same run).
    * ``raw_pickle_over_clear`` / ``raw_codec_over_clear``: raw pipeline time / this row's
      time (clear groups; >= 1 means clear() is as fast as the raw pipeline).
    * ``batch_over_process``, ``fsync_over_process``: time per op vs "process" durability.
    * ``speed_over_one_thread``: the "1 thread" row's time per op / this row's (group 4's
      fsync rows from threads: what group commit gains).
    * ``x_atomic_store``: safe_data.atomic's commit time / atomic_store's (group 10).
    * ``speed_over_synced_collections``: synced_collections' time per op / safe_data.synced's
      (group 11; >= 1 means faster than the original).
    * ``read_over_write``: the write row's time per op / this row's (group 13; >= 1 means
      read back at least as fast as written).
    * ``x_1k``: popitem()'s time per call / its time with 1k entries (group 15).
    * ``x_recipient``: encrypting a body to a fresh data key (and wrapping it) / to the
      recipient (group 20).
    * ``x_each``: restore_all()'s time / restore() of each container's (group 14);
      ``x_op``: time per op / a versioned append's outside any transaction (group 14).
    * ``import_ms``: median ``python -c "import safe_data"`` minus median ``python -c pass``.

    (The ``interleaved_*`` ratios are measured and stored by the clear and durability tests.)
    """
    groups: dict[str, dict[str, object]] = {}
    for meta in benchmarks:
        if meta and "ops" in meta.extra_info:
            groups.setdefault(meta.group, {})[meta.extra_info["variant"]] = meta
    loop = None
    for group, rows in groups.items():
        if group.startswith("0 calibration"):
            loop = per_op(rows["loop"])
    for group, rows in groups.items():
        t = {variant: per_op(meta) for variant, meta in rows.items()}
        for variant, meta in rows.items():
            info = meta.extra_info
            if "builtin" in t and variant != "builtin":
                info["x_builtin"] = round(t[variant] / t["builtin"], 3)
                if info.get("loop_overhead") and loop is not None and t["builtin"] > loop:
                    info["net_x_builtin"] = round((t[variant] - loop) / (t["builtin"] - loop), 3)
            if not variant.startswith("raw-") and variant != "builtin":
                for raw in ("raw-pickle", "raw-codec"):
                    if raw in t:
                        info[raw.replace("-", "_") + "_over_clear"] = round(t[raw] / t[variant], 3)
            if variant in ("batch", "fsync") and "process" in t:
                info[f"{variant}_over_process"] = round(t[variant] / t["process"], 3)
            if variant != "1 thread" and "1 thread" in t:
                info["speed_over_one_thread"] = round(t["1 thread"] / t[variant], 3)
            if variant == "safe_data" and "atomic_store" in t:
                info["x_atomic_store"] = round(t[variant] / t["atomic_store"], 3)
            if group.startswith("13 ") and "write" in t and variant != "write":
                info["read_over_write"] = round(t["write"] / t[variant], 3)
            if group.startswith("20 ") and variant != "recipient" and "recipient" in t:
                info["x_recipient"] = round(t[variant] / t["recipient"], 3)
            if group.startswith("15 ") and "1k" in t:
                info["x_1k"] = round(t[variant] / t["1k"], 3)
            if group.startswith("12 ") and "3k" in t:
                info["x_fewest"] = round(t[variant] / t["3k"], 3)
            if group.startswith("14 ") and variant != "each" and "each" in t:
                info["x_each"] = round(t[variant] / t["each"], 3)
            if group.startswith("14 ") and variant != "op" and "op" in t:
                info["x_op"] = round(t[variant] / t["op"], 3)
            if variant == "safe_data" and "synced_collections" in t:
                info["speed_over_synced_collections"] = round(t["synced_collections"] / t[variant], 3)
        if "import safe_data" in rows and "python -c pass" in rows:
            imp, base = rows["import safe_data"].stats, rows["python -c pass"].stats
            rows["import safe_data"].extra_info["import_ms"] = round((imp.median - base.median) * 1e3, 2)
            rows["import safe_data"].extra_info["import_ms_min"] = round((imp.min - base.min) * 1e3, 2)


_RATIO_KEYS = (
    "x_builtin",
    "net_x_builtin",
    "raw_pickle_over_clear",
    "raw_codec_over_clear",
    "interleaved_raw_pickle_over_clear",
    "interleaved_raw_codec_over_clear",
    "batch_over_process",
    "interleaved_batch_over_process",
    "fsync_over_process",
    "speed_over_one_thread",
    "interleaved_speed_over_one_thread",
    "records_per_fdatasync",
    "interleaved_records_per_fdatasync",
    "import_ms",
    "import_ms_min",
    "importtime_cumulative_ms",
    "heap_traced_pops",
    "heap_current_growth_kib",
    "heap_peak_growth_kib",
    "rss_anon_growth_kib",
    "disk_bytes_per_discard",
    "mb_per_s",
    "bare_mb_per_s",
    "upload_over_bare",
    "bare_durable_mb_per_s",
    "upload_over_bare_durable",
    "aiobotocore_mb_per_s",
    "upload_over_aiobotocore",
    "servers_over_bare",
    "cpu_uploader_over_no_uploader",
    "uploader_over_no_uploader",
    "x_atomic_store",
    "speed_over_synced_collections",
    "x_fewest",
    "x_1k",
    "x_recipient",
    "read_over_write",
    "x_each",
    "x_op",
)


def summary_rows(benchmarks) -> list[dict]:
    rows = []
    order = [
        "loop",
        "builtin",
        "pysubclass",
        "c",
        "twin",
        "twin-cw",
        "raw-pickle",
        "raw-codec",
        "process",
        "batch",
        "fsync",
        "1 thread",
        "4 threads",
        "8 threads",
        "python -c pass",
        "import safe_data",
        "bare",
        "bare-durable",
        "aiobotocore",
        "no-uploader",
        "uploader",
        "uploader-directory",
        "3k",
        "30k",
        "300k",
        "1M",
        "write",
        "records",
        "record_batches",
        "export jsonl",
    ]
    for meta in sorted(
        (m for m in benchmarks if m and "ops" in m.extra_info),
        key=lambda m: (
            m.group,
            order.index(m.extra_info["variant"]) if m.extra_info["variant"] in order else len(order),
        ),
    ):
        info = meta.extra_info
        row = {
            "group": meta.group,
            "variant": info["variant"],
            "name": meta.name,
            "stat": info.get("stat"),
            "ns_per_op": info.get("ns_per_op"),
            "ops_per_s": info.get("ops_per_s"),
        }
        row.update({k: info[k] for k in _RATIO_KEYS if k in info})
        rows.append(row)
    return rows


def check_targets(rows) -> list[tuple[str, str, float, bool]]:
    results = []
    for prefix, variant, key, op, limit, what in TARGETS:
        for row in rows:
            if row["group"].startswith(prefix) and row["variant"] == variant and key in row:
                value = row[key]
                ok = value <= limit if op == "<=" else value >= limit
                results.append((what, f"{row['group']} [{variant}]", value, ok))
    return results


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and abs(value) < 1000:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:,.0f}"


def print_summary(write_line, rows) -> None:
    write_line("")
    write_line(
        "safe_data benchmark figures (per op, from each row's `stat` round; import_ms from medians)",
        bold=True,
    )
    header = ["group", "variant", "stat", "ns/op", "ops/s", "ratios and figures"]
    table = [header] + [
        [
            r["group"],
            r["variant"],
            r["stat"] or "-",
            _fmt(r["ns_per_op"]),
            _fmt(r["ops_per_s"]),
            "  ".join(f"{k}={_fmt(r[k])}" for k in _RATIO_KEYS if k in r),
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for n, line in enumerate(table):
        cells = [
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=False))
        ]
        write_line("  ".join(cells + [line[-1]]).rstrip())
        if n == 0:
            write_line("  ".join("-" * w for w in widths) + "  " + "-" * len(header[-1]))
    results = check_targets(rows)
    if results:
        write_line("")
        write_line("targets", bold=True)
        for what, where, value, ok in results:
            write_line(
                f"  {'ok  ' if ok else 'MISS'}  {what:45s} {_fmt(value):>10s}   {where}", red=not ok, green=ok
            )
