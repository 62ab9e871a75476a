"""The whole-application time machine: restore_all() at one moment, transactions, the undo
log, undo and redo of whole units (docs/history.md)."""

import asyncio
import json
import tempfile
import threading
import time
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import safe_data
from safe_data import IncompleteHistoryError, SafeDict, SafeList, SafeSet, UndoError
from safe_data.cli import main
from safe_data.journal import format as fmt
from safe_data.journal.reader import Record

from ._helpers import thread_switch_interval


def _versioned(journal):
    return (
        SafeList([1, 2], name="l", journal=journal, versioned=True),
        SafeDict(a=1, name="d", journal=journal, versioned=True),
        SafeSet({1}, name="s", journal=journal, versioned=True),
    )


# --- transactions and the undo log -----------------------------------------------------------


def test_a_transaction_is_one_unit_of_the_undo_log(journal):
    lst, d, s = _versioned(journal)
    lst.pop()  # outside: a unit of its own
    with safe_data.transaction(note="move", user="ada", journal=journal) as txn:
        lst.append(9)
        d["a"] = 2  # "set" and "assign": one operation
        s.discard(1)
    d["b"] = 3
    newest, unit, pop = safe_data.undo_log(journal, last=3)
    assert unit.id == txn.id and unit.is_transaction
    assert (unit.note, unit.user, unit.outcome) == ("move", "ada", "committed")
    assert unit.containers == ["l", "d", "s"]
    assert [r.op for r in unit.records] == ["insert", "set", "assign", "discard"]
    assert unit.start <= unit.end and unit.undone is False
    assert (pop.note, pop.outcome, [r.op for r in pop.records]) == (None, None, ["pop"])
    assert [r.op for r in newest.records] == ["assign"] and not newest.is_transaction
    assert txn.containers == [lst, d, s] and txn.outcome == "committed"
    assert len(safe_data.undo_log(journal)) == 3 + 3  # and the three creation snapshots
    assert safe_data.undo_log(journal, last=0) == []


def test_one_operation_writing_two_records_is_one_unit(journal):
    lst, d, _ = _versioned(journal)
    lst[0] = "x"  # "set" then "assign"
    d.update(a=5, z=1)  # "update" then "assign"
    d["q"] = 1  # "assign" alone
    d["q"] = 2  # "set" then "assign": not merged with the one before
    ops = [[r.op for r in u.records] for u in safe_data.undo_log(journal, last=4)]
    assert ops == [["set", "assign"], ["assign"], ["update", "assign"], ["set", "assign"]]


def test_an_exception_ends_the_unit_as_failed_and_undoes_nothing(journal):
    lst, _, _ = _versioned(journal)
    with pytest.raises(KeyError):
        with safe_data.transaction(note="half", journal=journal) as txn:
            lst.append(3)
            raise KeyError("boom")
    assert txn.outcome == "failed" and lst == [1, 2, 3]
    assert safe_data.undo_log(journal, last=1)[0].outcome == "failed"
    safe_data.undo(txn)
    assert lst == [1, 2]


def test_one_transaction_per_thread(journal):
    with safe_data.transaction(note="outer", journal=journal) as txn:
        with pytest.raises(safe_data.TransactionError, match="still open in this thread"):
            with safe_data.transaction(note="inner", journal=journal):
                pass
    with pytest.raises(safe_data.TransactionError, match="already used"):
        with txn:
            pass
    with pytest.raises(TypeError):
        safe_data.transaction(note=3)


def test_two_asyncio_tasks_of_one_thread_cannot_both_have_one(journal):
    async def task(name, entered, release):
        with safe_data.transaction(note=name, journal=journal):
            entered.set()
            await release.wait()

    async def main():
        entered, release = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(task("first", entered, release))
        await asyncio.wait_for(entered.wait(), 10)
        with pytest.raises(safe_data.TransactionError, match="asyncio"):
            await task("second", asyncio.Event(), release)
        release.set()
        await first

    asyncio.run(main())


def test_undo_and_redo_a_unit_across_containers(journal):
    lst, d, s = _versioned(journal)
    with safe_data.transaction(note="t", journal=journal) as txn:
        lst.append(3)
        del d["a"]
        s.add(2)
        d["b"] = 1
    undo_txn = safe_data.undo(txn, user="bob")
    assert (lst, d, s) == ([1, 2], {"a": 1}, {1})
    log = safe_data.undo_log(journal)
    assert log[0].id == undo_txn.id and log[0].undoes == txn.id and log[0].note == f"undo {txn.id}"
    assert log[0].user == "bob"
    assert [u for u in log if u.id == txn.id][0].undone
    with pytest.raises(UndoError, match="already undone"):
        safe_data.undo(txn)
    safe_data.redo(txn)
    assert (lst, d, s) == ([1, 2, 3], {"b": 1}, {1, 2})
    assert safe_data.undo_log(journal, last=1)[0].redoes == txn.id
    with pytest.raises(UndoError, match="not undone"):
        safe_data.redo(txn)
    safe_data.undo(txn.id, journal=journal)  # by its id too
    assert (lst, d, s) == ([1, 2], {"a": 1}, {1})
    assert [safe_data.restore(n, journal=journal) for n in "lds"] == [[1, 2], {"a": 1}, {1}]


def test_redo_of_a_unit_never_undone(journal):
    lst, _, _ = _versioned(journal)
    with safe_data.transaction(journal=journal) as txn:
        lst.append(3)
    with pytest.raises(UndoError, match="not undone"):
        safe_data.redo(txn)
    with pytest.raises(TypeError):
        safe_data.redo(lst)


def test_a_conflicting_change_refuses_the_undo_and_changes_nothing(journal):
    lst, d, _ = _versioned(journal)
    with safe_data.transaction(journal=journal) as txn:
        lst.append(3)
        d["a"] = 2
    d["a"] = 7  # changed since, by another unit
    before = len(list(journal.records()))
    with pytest.raises(UndoError, match="'d' changed since"):
        safe_data.undo(txn)
    assert (lst, d) == ([1, 2, 3], {"a": 7})
    assert len(list(journal.records())) == before
    d["a"] = 2  # back as the unit left it: the undo is exact again
    safe_data.undo(txn)
    assert (lst, d) == ([1, 2], {"a": 1})


def test_a_change_by_another_thread_during_the_unit_refuses_the_undo(journal):
    lst, _, _ = _versioned(journal)
    with safe_data.transaction(journal=journal) as txn:
        lst.append(3)
        other = threading.Thread(target=lst.append, args=(4,))
        other.start()
        other.join()
        lst.append(5)
    with pytest.raises(UndoError, match="another thread"):
        safe_data.undo(txn)
    assert lst == [1, 2, 3, 4, 5]


def test_plain_containers_are_refused_not_half_undone(journal):
    plain = SafeList([1, 2], name="p", journal=journal)
    lst, _, _ = _versioned(journal)
    with safe_data.transaction(journal=journal) as txn:
        lst.append(3)
        plain.pop()
    with pytest.raises(UndoError, match="'p' is not versioned"):
        safe_data.undo(txn)
    assert (plain, lst) == ([1], [1, 2, 3])


def test_units_outside_transactions_need_their_containers(journal):
    lst, _, _ = _versioned(journal)
    lst.append(3)
    unit = safe_data.undo_log(journal, last=1)[0]
    with pytest.raises(UndoError, match="not alive in this process"):
        safe_data.undo(unit)
    safe_data.undo(unit, containers=[lst])
    assert lst == [1, 2]
    undo_unit = safe_data.undo_log(journal, last=1)[0]
    with pytest.raises(UndoError, match="is the undo of"):
        safe_data.undo(undo_unit)
    with pytest.raises(UndoError, match="no unit"):
        safe_data.undo("0000000000000000:1", journal=journal)


def test_a_container_created_in_the_unit_is_emptied(journal):
    with safe_data.transaction(journal=journal) as txn:
        fresh = SafeList([1, 2], name="fresh", journal=journal, versioned=True)
        fresh.append(3)
    safe_data.undo(txn)
    assert fresh == []
    safe_data.redo(txn)
    assert fresh == [1, 2, 3]


def test_units_of_another_process_and_open_units_are_refused(journal, tmp_path):
    other = safe_data.Journal(journal.path)  # another writer of the same directory
    try:
        theirs = SafeList([1], name="theirs", journal=other, versioned=True)
        with safe_data.transaction(journal=other) as txn:
            theirs.append(2)
        with pytest.raises(UndoError, match="another process"):
            safe_data.undo(safe_data.undo_log(journal, last=1)[0])
        with safe_data.transaction(journal=journal) as open_txn:
            with pytest.raises(UndoError, match="still open"):
                safe_data.undo(open_txn)
        assert txn.outcome == "committed"
    finally:
        other.close()


def test_containers_of_another_journal_are_units_there(journal, tmp_path):
    elsewhere = safe_data.Journal(tmp_path / "elsewhere")
    try:
        lst, _, _ = _versioned(journal)
        other = SafeList([1], name="other", journal=elsewhere, versioned=True)
        with safe_data.transaction(journal=journal) as txn:
            lst.append(3)
            other.append(2)
        assert txn.containers == [lst]
        assert safe_data.undo_log(journal, last=1)[0].containers == ["l"]
        assert [u.is_transaction for u in safe_data.undo_log(elsewhere)] == [False, False]
        safe_data.undo(txn)
        assert (lst, other) == ([1, 2], [1, 2])
    finally:
        elsewhere.close()


def test_undo_inside_a_transaction_is_refused(journal):
    lst, _, _ = _versioned(journal)
    with safe_data.transaction(journal=journal) as txn:
        lst.append(3)
    with safe_data.transaction(journal=journal):
        with pytest.raises(safe_data.TransactionError):
            safe_data.undo(txn)
    assert lst == [1, 2, 3]


def test_container_undo_is_unchanged_and_skips_what_a_unit_undo_reverted(journal):
    lst, _, _ = _versioned(journal)
    lst.pop()
    with safe_data.transaction(journal=journal) as txn:
        lst.pop()
    safe_data.undo(txn)
    assert lst == [1]
    assert [r.op for r in safe_data.undo(lst)] == ["pop"]  # the pop outside, not the unit's again
    assert lst == [1, 2]
    with pytest.raises(UndoError):
        lst.undo()


def test_an_older_reader_skips_the_markers_and_reads_every_other_record(journal, monkeypatch):
    lst, _, _ = _versioned(journal)
    with safe_data.transaction(journal=journal):
        lst.append(3)
    old_ops = {code: op for code, op in fmt.OPS.items() if op[0] != "txn"}
    monkeypatch.setattr(fmt, "OPS", old_ops)
    with pytest.warns(safe_data.JournalWarning, match="unknown operation code 11[23]"):
        records = list(journal.records())
    assert [r.op for r in records if r.container == "l"] == ["snapshot", "insert"]
    assert {r.kind for r in records} == {"list", "dict", "set"}


# --- restore_all -------------------------------------------------------------------------------


def test_restore_all_at_a_moment(journal):
    lst, d, s = _versioned(journal)
    plain = SafeDict(x=1, y=2, name="plain", journal=journal)
    t0 = time.time_ns()
    lst.append(3)
    d["a"] = 2
    s.clear()
    del plain["x"]
    app = safe_data.restore_all(at=t0, journal=journal)
    assert dict(app) == {"l": [1, 2], "d": {"a": 1}, "s": {1}}
    assert "plain" not in app and app.get("zzz") is None
    with pytest.raises(IncompleteHistoryError) as error:
        app["plain"]
    assert error.value.reason == "not versioned" and error.value.partial == {"x": 1}
    assert app.incomplete["plain"] is error.value
    now = safe_data.restore_all(journal=journal)
    assert dict(now) == {"l": [1, 2, 3], "d": {"a": 2}, "s": set()}
    assert now.open_transactions == [] and now.at_ns is None
    writer = journal._manager.writer_id
    assert now.names[writer, lst.container_id] == "l" and now.by_identity[writer, s.container_id] == set()
    assert dict(safe_data.restore_all(at=0, journal=journal)) == {}


def test_restore_all_matches_restore_of_each(journal):
    lst, d, s = _versioned(journal)
    moments = []
    for i in range(20):
        lst.append(i)
        if i % 3 == 0:
            d[i] = lst.pop(0)
        if i % 4 == 0:
            s ^= {i, 1}
        moments.append(time.time_ns())
    for t in moments[::4]:
        app = safe_data.restore_all(at=t, journal=journal)
        assert dict(app) == {n: safe_data.restore(n, at=t, journal=journal) for n in "lds"}


def test_nested_containers_are_restored_inside_their_parent(journal):
    orders = SafeList([{"items": ["a"]}], name="orders", journal=journal, deep=True, versioned=True)
    t0 = time.time_ns()
    orders[0]["items"].append("b")
    taken = orders.pop()  # out of its parent: a container of its own again
    app = safe_data.restore_all(at=t0, journal=journal)
    assert dict(app) == {"orders": [{"items": ["a"]}]}
    now = safe_data.restore_all(journal=journal)
    assert now["orders"] == [] and now["orders[0]"] == taken


def test_a_plain_container_nested_in_a_versioned_one_is_reported(journal):
    box = SafeList([], name="box", journal=journal, versioned=True, deep=True)
    plain = SafeList([1, 2], name="plain", journal=journal)
    box.append(plain)  # a safe container stays what it is: not versioned
    plain.pop()
    app = safe_data.restore_all(journal=journal)
    assert "box" not in app and app.incomplete["box"].reason == "nested"
    assert app.incomplete["box"].partial == [[1, 2]]  # as the box recorded it
    assert app.incomplete["plain"].reason == "not versioned"


def test_a_name_of_two_live_writers_is_ambiguous(journal):
    other = safe_data.Journal(journal.path)
    try:
        mine = SafeList([1], name="o", journal=journal, versioned=True)
        theirs = SafeList([2], name="o", journal=other, versioned=True)
        mine.append(5)
        app = safe_data.restore_all(journal=journal)
        assert "o" not in app
        with pytest.raises(safe_data.AmbiguousNameError, match="2 containers were named 'o'"):
            app["o"]
        with pytest.raises(safe_data.AmbiguousNameError):
            app.get("o")  # never a quiet None
        assert sorted(app.ambiguous["o"].values()) == [[1, 5], [2]]
        assert theirs == [2]
    finally:
        other.close()


def test_a_name_taken_over_by_a_later_run_is_that_run_s(journal):
    yesterday = safe_data.Journal(journal.path)
    SafeList([1], name="o", journal=yesterday, versioned=True).append(2)
    yesterday.close()
    today = SafeList(["new"], name="o", journal=journal, versioned=True)
    app = safe_data.restore_all(journal=journal)
    assert app["o"] == ["new"] and len(app.by_identity) == 2
    today.append("more")
    assert safe_data.restore_all(journal=journal)["o"] == ["new", "more"]


def test_open_transactions_are_named(journal):
    lst, _, _ = _versioned(journal)
    with safe_data.transaction(journal=journal) as txn:
        lst.append(3)
        inside = time.time_ns()
    assert safe_data.restore_all(at=inside, journal=journal).open_transactions == [txn.id]
    assert safe_data.restore_all(journal=journal).open_transactions == []


def _record(writer, seq, time_ns, op="insert"):
    return Record(seq, time_ns, "l", "list", op, 0, [seq], 1, 1, None, writer, None, None, 1)


def test_a_clock_stepped_back_cuts_by_seq():
    from safe_data.app_state import _cut

    # writer 7 wrote seq 2 at t=50, then its clock stepped back: seq 3 at t=10
    records = [
        _record(7, 1, 5, "snapshot"),
        _record(7, 2, 50),
        _record(7, 3, 10),
        _record(7, 4, 60),
        _record(8, 1, 40, "snapshot"),
    ]
    upto, later = _cut(records, 20)
    assert upto == records[:3] and later == records[3:]
    assert _cut(records, None) == (records, [])


def test_restore_all_reads_the_default_journal():
    lst = SafeList([1], name="mine", versioned=True)
    lst.append(2)
    assert safe_data.restore_all()["mine"] == [1, 2]


# --- the command ----------------------------------------------------------------------------------


def invoke(journal, *args):
    return CliRunner().invoke(main, ["--journal", str(journal), *args], catch_exceptions=False)


def test_restore_all_command(journal):
    lst, d, _ = _versioned(journal)
    SafeList([1], name="plain", journal=journal).pop()
    time.sleep(0.002)  # the command's times are exact to the microsecond
    t0 = time.time_ns()
    time.sleep(0.002)
    lst.append(3)
    journal.flush()
    at = datetime.fromtimestamp(t0 / 1e9, tz=timezone.utc).isoformat()
    result = invoke(journal.path, "restore", "--all", "--at", at)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["containers"] == {"l": [1, 2], "d": {"a": 1}, "s": [1]}
    assert out["incomplete"] == {"plain": {"reason": "not versioned"}}
    result = invoke(journal.path, "restore", "--all", "--partial")
    assert json.loads(result.stdout)["incomplete"]["plain"] == {"reason": "not versioned", "partial": [1]}
    assert "plain" in result.stderr
    assert invoke(journal.path, "restore", "--all", "l").exit_code == 2
    assert invoke(journal.path, "restore").exit_code == 2
    assert invoke(journal.path, "restore", "--all", "--discarded").exit_code == 2


# --- model-based: every step compared with a model ------------------------------------------------


#: a container and a change: + adds (a new value), - discards
CHANGES = ["l+", "l-", "d+", "d-", "s+", "s-", "p-"]


class TimeMachine(RuleBasedStateMachine):
    """Versioned list, dict and set and a plain list, changed inside and outside
    transactions, units undone and redone; after every step the live containers, and
    restore_all now and at an earlier moment, must match the model."""

    def __init__(self):
        super().__init__()
        self.journal = safe_data.Journal(tempfile.mkdtemp())
        self.live = {
            "l": SafeList(name="l", journal=self.journal, versioned=True),
            "d": SafeDict(name="d", journal=self.journal, versioned=True),
            "s": SafeSet(name="s", journal=self.journal, versioned=True),
            "p": SafeList(name="p", journal=self.journal),
        }
        self.model = {"l": [], "d": {}, "s": set(), "p": []}
        self.moments = []  # (time, the versioned model then)
        self.txn = None  # the open transaction and what it did: [txn, before, plain_discard, recorded]
        self.units = []  # [txn, before {name: state}, after {name: state}, plain_discard, recorded, undone]
        self.counter = 0

    def teardown(self):
        if self.txn is not None:
            self.txn[0].__exit__(None, None, None)
        self.journal.close()

    def _changing(self, name, plain_discard=False):
        if self.txn is not None:
            self.txn[1].setdefault(name, _copy(self.model[name]))
            self.txn[2] |= plain_discard
            self.txn[3] = True

    @rule(value=st.integers(0, 5))
    def list_append(self, value):
        self._changing("l")
        self.live["l"].append(value)
        self.model["l"].append(value)

    @precondition(lambda self: self.model["l"])
    @rule(data=st.data())
    def list_pop(self, data):
        i = data.draw(st.integers(0, len(self.model["l"]) - 1))
        self._changing("l")
        assert self.live["l"].pop(i) == self.model["l"].pop(i)

    @rule(key=st.sampled_from("abc"), value=st.integers(0, 3))
    def dict_set(self, key, value):
        self._changing("d")
        self.live["d"][key] = value
        self.model["d"][key] = value

    @precondition(lambda self: self.model["d"])
    @rule(data=st.data())
    def dict_del(self, data):
        key = data.draw(st.sampled_from(sorted(self.model["d"])))
        self._changing("d")
        del self.live["d"][key]
        del self.model["d"][key]

    @rule()
    def set_add(self):
        self.counter += 1
        self._changing("s")
        self.live["s"].add(self.counter)
        self.model["s"].add(self.counter)

    @precondition(lambda self: self.model["s"])
    @rule(data=st.data())
    def set_discard(self, data):
        value = data.draw(st.sampled_from(sorted(self.model["s"])))
        self._changing("s")
        self.live["s"].discard(value)
        self.model["s"].discard(value)

    @rule(value=st.integers())
    def plain_append(self, value):  # journals nothing: not part of any unit
        self.live["p"].append(value)
        self.model["p"].append(value)

    @precondition(lambda self: self.model["p"])
    @rule()
    def plain_pop(self):
        self._changing("p", plain_discard=True)
        assert self.live["p"].pop() == self.model["p"].pop()

    @precondition(lambda self: self.txn is None)
    @rule(changes=st.lists(st.sampled_from(CHANGES), min_size=1, max_size=4), fail=st.booleans())
    def whole_transaction(self, changes, fail):
        """A transaction in one step (so that there are units to undo early and often)."""
        self.begin("whole")
        for change in changes:
            self._change(change)
        self.end(fail)

    def _change(self, change):
        live, model = self.live[change[0]], self.model[change[0]]
        if change[1] == "+":
            self.counter += 1
            self._changing(change[0])
            if change[0] == "l":
                live.append(self.counter)
                model.append(self.counter)
            elif change[0] == "d":
                key = "abc"[self.counter % 3]
                live[key] = model[key] = self.counter
            else:
                live.add(self.counter)
                model.add(self.counter)
        elif model:
            self._changing(change[0], plain_discard=change[0] == "p")
            if change[0] in "lp":
                assert live.pop() == model.pop()
            elif change[0] == "d":
                key = min(model)
                del live[key], model[key]
            else:
                value = min(model)
                live.discard(value)
                model.discard(value)

    @precondition(lambda self: self.txn is None)
    @rule(note=st.text(max_size=5))
    def begin(self, note):
        txn = safe_data.transaction(note=note, journal=self.journal)
        txn.__enter__()
        self.txn = [txn, {}, False, False]

    @precondition(lambda self: self.txn is not None)
    @rule(fail=st.booleans())
    def end(self, fail):
        txn, before, plain_discard, recorded = self.txn
        self.txn = None
        if fail:
            txn.__exit__(ValueError, ValueError("failed"), None)
        else:
            txn.__exit__(None, None, None)
        after = {name: _copy(self.model[name]) for name in before}
        self.units.append([txn, before, after, plain_discard, recorded, False])

    @precondition(lambda self: self.txn is None and self.units)
    @rule(data=st.data(), redoing=st.booleans())
    def undo_or_redo(self, data, redoing):
        self._revert(self.units[-1 - data.draw(st.integers(0, min(3, len(self.units) - 1)))], redoing)

    @precondition(lambda self: self.txn is None and self.units)
    @rule()
    def undo_or_redo_the_latest(self):  # (a second rule: undo and redo come up twice as often)
        self._revert(self.units[-1], self.units[-1][5])

    def _revert(self, unit, redoing):
        txn, before, after, plain_discard, recorded, undone = unit
        now, then = (before, after) if redoing else (after, before)
        exact = all(self.model[name] == now[name] for name in before if name != "p")
        expected = recorded and not plain_discard and undone == redoing and exact
        try:
            (safe_data.redo if redoing else safe_data.undo)(txn)
        except UndoError:
            assert not expected
            return
        assert expected
        for name in before:
            self.model[name] = _copy(then[name])
        unit[5] = not redoing

    @rule()
    def note_the_moment(self):
        self.moments.append((time.time_ns(), {n: _copy(v) for n, v in self.model.items() if n != "p"}))

    @invariant()
    def live_containers_match(self):
        for name, container in self.live.items():
            assert container == self.model[name], name

    @invariant()
    def restore_all_matches(self):
        app = safe_data.restore_all(journal=self.journal)
        assert dict(app) == {n: v for n, v in self.model.items() if n != "p"}
        assert set(app.incomplete) <= {"p"}
        open_ids = [] if self.txn is None else [self.txn[0].id]
        assert app.open_transactions == open_ids
        if self.moments:
            t, then = self.moments[len(self.moments) // 2]
            assert dict(safe_data.restore_all(at=t, journal=self.journal)) == then


def _copy(value):
    return type(value)(value)


TestTimeMachine = TimeMachine.TestCase
TestTimeMachine.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- threads ------------------------------------------------------------------------------------


def test_each_unit_holds_exactly_its_thread_s_operations(journal):
    threads, rounds = 4, 15
    containers = {
        t: (
            SafeList(name=f"l{t}", journal=journal, versioned=True),
            SafeDict(name=f"d{t}", journal=journal, versioned=True),
        )
        for t in range(threads)
    }
    expected = {}  # note -> the (container, key or value) of its operations, in order
    start = threading.Barrier(threads)

    def work(t):
        lst, d = containers[t]
        start.wait()
        for k in range(rounds):
            note = f"{t}-{k}"
            ops = []
            with safe_data.transaction(note=note, journal=journal):
                for i in range(k % 4 + 1):
                    lst.append(i)
                    d[f"{k}.{i}"] = i
                    ops += [(f"l{t}", "insert"), (f"d{t}", "assign")]
            expected[note] = ops
            lst.append(-1)  # outside any transaction: a unit of its own

    with thread_switch_interval(1e-6):
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    units = safe_data.undo_log(journal)
    transactions = {u.note: u for u in units if u.is_transaction}
    assert set(transactions) == set(expected)
    for note, unit in transactions.items():
        assert [(r.container, r.op) for r in unit.records] == expected[note], note
        assert unit.outcome == "committed" and {r.thread for r in unit.records} == {unit.thread}
    singles = [u for u in units if not u.is_transaction and u.records[0].op == "insert"]
    assert len(singles) == threads * rounds and all(len(u.records) == 1 for u in singles)
