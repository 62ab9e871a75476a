"""Discards racing other threads' mutators: added = kept + journaled, exactly once.

A model-based check on seeded random schedules.  In each run one thread makes random
destructive calls of every kind on a container while two other threads keep adding to
it (and, for lists, reordering it) through the container's own non-destructive methods,
which take no lock on the C extension's fast path.  Threads switch every microsecond
(``sys.setswitchinterval(1e-6)``), values are large enough to be lz4-compressed, and the
segments are small, so the GIL is let go inside compression, rotation and encoding.

Every value is unique, so the journal can be checked exactly: each value ever put in the
container is either still in it or in exactly one discard record, never both, never
neither.  The discarding calls must also raise nothing a builtin would not raise.
"""

from __future__ import annotations

import random
import threading
import traceback
from collections import Counter

import pytest

import safe_data as sd
from safe_data.history import ADDING_OPS

from ._helpers import thread_switch_interval

SEEDS = range(4)
DISCARDS = 300  # destructive calls per run
PAD = "x" * 600  # compressible, and enough to rotate 64 KiB segments often


@pytest.fixture
def switch_every_microsecond():
    with thread_switch_interval(1e-6):
        yield


class Values:
    """Unique, compressible values; remembers every one handed out."""

    def __init__(self, tag):
        self.tag = tag
        self.n = 0
        self.lock = threading.Lock()
        self.made = []

    def __call__(self):
        with self.lock:
            self.n += 1
            v = f"{self.tag}{self.n}:{PAD}"
            self.made.append(v)
        return v


def discarded_values(journal, name):
    out = []
    for r in journal.records(name, on_error="raise"):
        if r.op in ADDING_OPS:
            continue
        out.extend(r.values.values() if isinstance(r.values, dict) else r.values)
    return out


def run_schedule(container, discard, adders, stop_after=DISCARDS):
    """Run ``discard(i)`` stop_after times while each adder runs in a thread of its own.

    Returns the tracebacks of everything that raised (in any thread)."""
    errors = []
    done = threading.Event()

    def keep_adding(add):
        try:
            while not done.is_set():
                add()
        except BaseException as exc:  # collected: a failing thread must fail the test
            errors.append("".join(traceback.format_exception(exc)))

    threads = [threading.Thread(target=keep_adding, args=(add,)) for add in adders]
    for t in threads:
        t.start()
    try:
        for i in range(stop_after):
            try:
                discard(i)
            except (IndexError, KeyError, ValueError):
                pass  # what the builtin raises too (an empty container, a gone value)
            except BaseException as exc:
                errors.append("".join(traceback.format_exception(exc)))
    finally:
        done.set()
        for t in threads:
            t.join()
    return errors


def assert_accounted(made, kept, journaled):
    made, kept, journaled = Counter(made), Counter(kept), Counter(journaled)
    lost = made - kept - journaled
    twice = journaled - made
    both = kept & journaled
    if lost or twice or both:
        pytest.fail(
            f"of {sum(made.values())} values added: {sum(lost.values())} lost (neither "
            f"kept nor journaled), {sum(twice.values())} journaled more than once or never "
            f"added, {sum(both.values())} both kept and journaled",
            pytrace=False,
        )


LIST_DISCARDS = [
    "clear",
    "imul0",
    "reinit",
    "pop",
    "pop0",
    "remove",
    "del",
    "del_slice",
    "del_extended",
    "set",
    "set_slice",
]


def list_discard(L, rng, new, op):
    n = len(L)
    if op == "clear":
        L.clear()
    elif op == "imul0":
        L *= 0
    elif op == "reinit":
        L.__init__([new() for _ in range(rng.randrange(3))])
    elif op == "pop":
        L.pop()
    elif op == "pop0":
        L.pop(0)
    elif op == "remove":
        L.remove(L[rng.randrange(n)] if n else "absent")
    elif op == "del":
        del L[rng.randrange(-n, n) if n else 0]
    elif op == "del_slice":
        a = rng.randrange(n + 1)
        del L[a : a + rng.randrange(1, 5)]
    elif op == "del_extended":
        del L[rng.randrange(3) :: rng.choice([2, 3, -2])]
    elif op == "set":
        L[rng.randrange(-n, n) if n else 0] = new()
    elif op == "set_slice":
        a = rng.randrange(n + 1)
        L[a : a + rng.randrange(4)] = [new() for _ in range(rng.randrange(4))]


def list_adders(L, new):
    adders = [lambda: L.append(new()), lambda: (L.extend([new(), new()]), L.insert(0, new()))]
    if L.versioned:  # a versioned reverse journals the whole list: keep the journal small
        return adders + [lambda: L.__iadd__([new()])]
    return adders + [lambda: (L.__iadd__([new()]), L.reverse())]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["plain", "deep", "versioned"])
def test_list_discards_racing_adders_lose_nothing(tmp_path, seed, kind, switch_every_microsecond):
    rng = random.Random(seed)
    new = Values("v")
    with sd.Journal(tmp_path / "j", segment_size=64 * 1024) as j:
        L = sd.SafeList(
            [new() for _ in range(50)],
            name="L",
            journal=j,
            deep=kind == "deep",
            versioned=kind == "versioned",
        )

        def discard(i):
            list_discard(
                L,
                rng,
                new,
                LIST_DISCARDS[i % len(LIST_DISCARDS)]
                if i < 2 * len(LIST_DISCARDS)
                else rng.choice(LIST_DISCARDS),
            )
            if len(L) < 5:
                L.extend(new() for _ in range(20))

        errors = run_schedule(L, discard, list_adders(L, new))
        assert errors == [], f"{len(errors)} calls raised; the first: {errors[0]}"
        assert_accounted(new.made, list(L), discarded_values(j, "L"))


SET_DISCARDS = [
    "clear",
    "reinit",
    "pop",
    "remove",
    "discard",
    "isub",
    "iand",
    "ixor",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
]


def set_discard(S, rng, new, op):
    some = rng.sample(sorted(S), min(len(S), 3))
    if op == "clear":
        S.clear()
    elif op == "reinit":
        S.__init__([new() for _ in range(rng.randrange(3))])
    elif op == "pop":
        S.pop()
    elif op == "remove":
        S.remove(some[0] if some else "absent")
    elif op == "discard":
        S.discard(some[0] if some else "absent")
    elif op == "isub":
        S -= set(some)
    elif op == "iand":
        S &= set(rng.sample(sorted(S), len(S) // 2))
    elif op == "ixor":
        S ^= set(some) | {new()}
    elif op == "difference_update":
        S.difference_update(some)
    elif op == "intersection_update":
        S.intersection_update(rng.sample(sorted(S), len(S) // 2))
    elif op == "symmetric_difference_update":
        S.symmetric_difference_update(set(some) | {new()})


@pytest.mark.parametrize("seed", SEEDS)
def test_set_discards_racing_adders_lose_nothing(tmp_path, seed, switch_every_microsecond):
    rng = random.Random(seed)
    new = Values("s")
    with sd.Journal(tmp_path / "j", segment_size=64 * 1024) as j:
        S = sd.SafeSet([new() for _ in range(50)], name="S", journal=j)

        def discard(i):
            set_discard(
                S,
                rng,
                new,
                SET_DISCARDS[i % len(SET_DISCARDS)]
                if i < 2 * len(SET_DISCARDS)
                else rng.choice(SET_DISCARDS),
            )
            if len(S) < 5:
                S.update(new() for _ in range(20))

        errors = run_schedule(
            S, discard, [lambda: S.add(new()), lambda: S.update([new(), new()]), lambda: S.__ior__({new()})]
        )
        assert errors == [], f"{len(errors)} calls raised; the first: {errors[0]}"
        assert_accounted(new.made, list(S), discarded_values(j, "S"))


DICT_DISCARDS = ["clear", "reinit", "pop", "popitem", "del", "set", "update", "ior"]


def dict_discard(D, rng, new, keys, op):
    present = list(D)
    k = rng.choice(present) if present else "absent"
    if op == "clear":
        D.clear()
    elif op == "reinit":
        D.__init__({k: new()})
    elif op == "pop":
        D.pop(k)
    elif op == "popitem":
        D.popitem()
    elif op == "del":
        del D[k]
    elif op == "set":
        D[k] = new()
    elif op == "update":
        D.update({k: new(), keys(): new()})
    elif op == "ior":
        D |= {k: new()}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["plain", "versioned"])
def test_dict_discards_racing_adders_lose_nothing(tmp_path, seed, kind, switch_every_microsecond):
    rng = random.Random(seed)
    new = Values("d")
    keys = Values("k")
    with sd.Journal(tmp_path / "j", segment_size=64 * 1024) as j:
        D = sd.SafeDict(
            {keys(): new() for _ in range(50)}, name="D", journal=j, versioned=kind == "versioned"
        )

        def discard(i):
            dict_discard(
                D,
                rng,
                new,
                keys,
                DICT_DISCARDS[i % len(DICT_DISCARDS)]
                if i < 2 * len(DICT_DISCARDS)
                else rng.choice(DICT_DISCARDS),
            )
            if len(D) < 5:
                D.update((keys(), new()) for _ in range(20))

        def set_new_key():
            D[keys()] = new()

        errors = run_schedule(
            D, discard, [set_new_key, lambda: D.setdefault(keys(), new()), lambda: D.update({keys(): new()})]
        )
        assert errors == [], f"{len(errors)} calls raised; the first: {errors[0]}"
        # every key the adders use is new, so setdefault always stores its default
        assert_accounted(new.made, list(D.values()), discarded_values(j, "D"))


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize("kind", ["bytearray", "sequence proxy", "mapping proxy", "deque"])
def test_wrappers_discards_racing_adders_lose_nothing(tmp_path, seed, kind, switch_every_microsecond):
    """make_safe's wrappers and the proxies: their adding methods take the lock too."""
    import collections

    rng = random.Random(seed)
    new = Values("w")
    with sd.Journal(tmp_path / "j", segment_size=64 * 1024) as j:
        if kind == "bytearray":  # bytes are not unique: count them, tagged by position
            return _bytearray_race(j, rng)
        if kind == "mapping proxy":
            target = {}
            C = sd.proxy(target, name="C", journal=j)
            keys = Values("k")
            adders = [lambda: C.__setitem__(keys(), new()), lambda: C.setdefault(keys(), new())]
            ops = [
                C.clear,
                lambda: C.pop(rng.choice(list(target)), None),
                C.popitem,
                lambda: C.update({rng.choice(list(target)): new()}) if target else None,
            ]
        else:
            target = [] if kind == "sequence proxy" else None
            C = (
                sd.proxy(target, name="C", journal=j)
                if target is not None
                else sd.make_safe(collections.deque(), name="C", journal=j)
            )
            adders = [lambda: C.append(new()), lambda: (C.extend([new(), new()]), C.insert(0, new()))]
            ops = [
                C.clear,
                C.pop,
                lambda: C.remove(C[rng.randrange(len(C))]),
                lambda: C.__delitem__(rng.randrange(len(C))),
                lambda: C.__setitem__(rng.randrange(len(C)), new()),
            ]

        def discard(i):
            rng.choice(ops)()
            if len(C) < 5:
                adders[0]()

        errors = run_schedule(C, discard, adders)
        assert errors == [], f"{len(errors)} calls raised; the first: {errors[0]}"
        kept = list(C.values()) if kind == "mapping proxy" else list(C)
        assert_accounted(new.made, kept, discarded_values(j, "C"))


def _bytearray_race(j, rng):
    B = sd.make_safe(bytearray(), name="B", journal=j)
    added = Counter()
    lock = threading.Lock()

    def add():
        with lock:  # the byte values added, counted (the journal keeps bytes, not identities)
            b = rng.randrange(256)
            added[b] += 600
        B.extend(bytes([b]) * 600)

    def discard(i):
        (B.clear if i % 2 else lambda: B.__delitem__(slice(0, 300)))()

    errors = run_schedule(B, discard, [add, add])
    assert errors == [], errors[0]
    journaled = Counter(b for r in j.records("B", on_error="raise") for b in r.values)
    assert Counter(bytes(B)) + journaled == added
