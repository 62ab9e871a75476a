"""safe_data.watch(): plain dicts and objects protected in place by a dict watcher (CPython
3.12+, the C extension); elsewhere a clear NotImplementedError."""

from __future__ import annotations

import gc
import random
import signal
import subprocess
import sys
import threading
import types

import pytest

import safe_data
from safe_data.containers.watch import _target_dict

from ._helpers import EXTENSION_EXPECTED, records, recovering, thread_switch_interval, wait_until

SUPPORTED = sys.version_info >= (3, 12) and EXTENSION_EXPECTED
needs_watchers = pytest.mark.skipif(not SUPPORTED, reason="dict watchers: CPython 3.12+ and the C extension")


def ops(journal, name):
    return [(r.op, r.key, r.values) for r in records(journal, name)]


@pytest.mark.skipif(SUPPORTED, reason="watch() works here")
def test_without_watchers_watch_says_what_to_use_instead():
    d = {"a": 1}
    for call in (lambda: safe_data.watch(d, "d"), lambda: safe_data.unwatch(d)):
        with pytest.raises(NotImplementedError, match="SafeDict") as info:
            call()
        assert ("3.12" in str(info.value)) == (sys.version_info < (3, 12))
    assert d == {"a": 1}


@needs_watchers
def test_every_kind_of_loss_is_journaled_once_with_the_lost_value(journal):
    d = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    safe_data.watch(d, "cfg", journal=journal)
    d["a"] = 10  # overwrite
    d["new"] = 0  # a new key loses nothing
    d["b"] = d["b"]  # the same object again: nothing lost
    del d["b"]
    assert d.pop("c") == 3
    assert d.popitem() == ("new", 0)
    d.update({"a": 11, "z": 26})
    dict.__setitem__(d, "d", 40)  # below any subclass: the watcher still sees it
    dict.clear(d)
    safe_data.flush_watched()
    assert ops(journal, "cfg") == [
        ("set", "a", {"a": 1}),
        ("del", "b", {"b": 2}),
        ("del", "c", {"c": 3}),
        ("del", "new", {"new": 0}),
        ("set", "a", {"a": 10}),
        ("set", "d", {"d": 4}),
        ("clear", None, {"a": 11, "d": 40, "e": 5, "z": 26}),
    ]
    safe_data.unwatch(d)


@needs_watchers
def test_a_change_by_the_main_thread_is_journaled_before_its_next_call(journal):
    d = {"k": "old"}
    safe_data.watch(d, "main", journal=journal)
    d["k"] = "new"
    # no flush_watched(): the pending call ran at the check before this call
    assert ops(journal, "main") == [("set", "k", {"k": "old"})]
    safe_data.unwatch(d)


@needs_watchers
def test_a_change_by_another_thread_is_journaled_while_the_main_thread_waits(journal):
    """The committer thread journals it: the main thread runs no bytecode meanwhile (it is
    blocked in join()), so the pending call cannot be what wrote it."""
    d = {"k": "old"}
    safe_data.watch(d, "other", journal=journal)
    seen = []

    def worker():
        del d["k"]
        seen.append(wait_until(lambda: ops(journal, "other"), 10, "the change was never journaled"))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [[("del", "k", {"k": "old"})]]
    safe_data.unwatch(d)


@needs_watchers
def test_threads_racing_on_a_watched_dict_lose_nothing_and_journal_nothing_twice(journal):
    """Seeded random schedules, a thread switch every microsecond: every value ever stored
    is either still in the dict or journaled, exactly once."""
    d: dict = {}
    safe_data.watch(d, "race", journal=journal)
    stored = []  # every (key, value) ever put in the dict
    stored_lock = threading.Lock()

    def worker(seed):
        rng = random.Random(seed)
        for i in range(400):
            key = rng.randrange(20)
            value = (seed, i)
            action = rng.random()
            if action < 0.6:
                with stored_lock:
                    stored.append(value)
                d[key] = value
            elif action < 0.8:
                d.pop(key, None)
            elif action < 0.9:
                try:
                    d.popitem()
                except KeyError:
                    pass
            else:
                d.clear()

    with thread_switch_interval(1e-6):
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    safe_data.flush_watched()
    journaled = [v for r in records(journal, "race") for v in r.values.values()]
    assert sorted(journaled + list(d.values())) == sorted(stored)
    safe_data.unwatch(d)


INLINE_VALUES_UNWATCHED = sys.version_info[:3] == (3, 13, 0)  # CPython issue 125608


@needs_watchers
def test_an_objects_attributes(journal):
    class Settings:
        pass

    s = Settings()
    s.port, s.host = 80, "a"
    if INLINE_VALUES_UNWATCHED:
        with pytest.raises(NotImplementedError, match="3.13.1"):
            safe_data.watch(s, "settings", journal=journal)
        return
    safe_data.watch(s, "settings", journal=journal)
    for _ in range(3):  # enough times for the interpreter to specialise the store
        s.port = s.port + 1
    del s.host
    safe_data.flush_watched()
    assert ops(journal, "settings") == [
        ("set", "port", {"port": 80}),
        ("set", "port", {"port": 81}),
        ("set", "port", {"port": 82}),
        ("del", "host", {"host": "a"}),
    ]
    assert safe_data.watched_name(s) == "settings"
    safe_data.unwatch(s)


@needs_watchers
def test_a_modules_globals(journal):
    module = types.ModuleType("plugin")
    exec("counter = 1\ndef bump():\n    global counter\n    counter += 1\n", module.__dict__)
    safe_data.watch(module, "plugin", journal=journal)
    module.bump()
    module.bump()
    safe_data.flush_watched()
    assert ops(journal, "plugin") == [("set", "counter", {"counter": 1}), ("set", "counter", {"counter": 2})]
    assert safe_data.watched_name(module) == "plugin"
    safe_data.unwatch(module)


@needs_watchers
def test_contents_at_deallocation_only_when_asked(journal):
    kept, dropped = {"x": 1}, {"y": 2}
    safe_data.watch(kept, "kept", journal=journal, on_dealloc=True)
    safe_data.watch(dropped, "dropped", journal=journal)
    del kept, dropped
    gc.collect()
    safe_data.flush_watched()
    assert ops(journal, "kept") == [("clear", None, {"x": 1})]
    assert ops(journal, "dropped") == []


@needs_watchers
def test_unwatch_journals_what_came_before_and_nothing_after(journal):
    d = {"a": 1, "b": 2}
    safe_data.watch(d, "w", journal=journal)
    del d["a"]
    safe_data.unwatch(d)
    del d["b"]
    safe_data.flush_watched()
    assert ops(journal, "w") == [("del", "a", {"a": 1})]
    assert safe_data.watched_name(d) is None


@needs_watchers
def test_misuse_gets_clear_errors(journal):
    d = {}
    with pytest.raises(ValueError, match="not watched"):
        safe_data.unwatch(d)
    safe_data.watch(d, "once", journal=journal)
    with pytest.raises(ValueError, match="watched already, as 'once'"):
        safe_data.watch(d, "twice", journal=journal)
    with pytest.raises(ValueError, match="needs no watch"):
        safe_data.watch(safe_data.SafeDict(journal=journal))
    with pytest.raises(TypeError, match="not int"):
        safe_data.watch(5)
    with pytest.raises(TypeError, match="name must be a str"):
        safe_data.watch({}, name=3)
    safe_data.unwatch(d)


@needs_watchers
def test_a_value_the_journal_cannot_encode_is_reported_not_dropped_silently(journal):
    d = {"f": lambda: None}
    safe_data.watch(d, "bad", journal=journal)
    with pytest.warns(
        safe_data.JournalWarning, match="watched dict 'bad': the set of key 'f' could not be journaled"
    ):
        d["f"] = 1
        safe_data.flush_watched()
    safe_data.unwatch(d)


@needs_watchers
def test_a_default_name_says_where_watch_was_called():
    d = safe_data.watch({})
    assert safe_data.watched_name(d) == f"dict@{__name__}:{sys._getframe().f_lineno - 1}"
    safe_data.unwatch(d)
    assert _target_dict(d) is d


WATCHING_CHILD = r"""
import sys
import safe_data
journal = safe_data.Journal(sys.argv[1])
d = {i: f"value-{i}" for i in range(100000)}
if sys.argv[2] == "watch":
    safe_data.watch(d, "state", journal=journal)
for i in range(100000):
    del d[i]
    if i % 50 == 0:
        safe_data.flush_watched()
        print(i, flush=True)
"""


@needs_watchers
@pytest.mark.parametrize("mode", ["watch", "control"])
def test_deletions_flushed_before_a_sigkill_are_in_the_journal(tmp_path, mode):
    """The child acknowledges after flush_watched(); every acknowledged deletion must be in
    the journal after a SIGKILL.  The control run does not watch: the check must fail."""
    script = tmp_path / "child.py"
    script.write_text(WATCHING_CHILD)
    path = tmp_path / "journal"
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), mode], stdout=subprocess.PIPE, text=True
    )
    acked = -1
    for line in child.stdout:
        acked = int(line)
        if acked >= 2000:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with recovering(), safe_data.Journal(path, readonly=True) as j:
        deleted = {k for r in records(j, "state") for k in r.values}
    missing = set(range(acked + 1)) - deleted
    if mode == "watch":
        assert not missing
    else:
        assert len(missing) == acked + 1
