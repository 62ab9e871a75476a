"""Containers by identity: every record names its container's number as well as its path.

A nested container (``deep=True``) is named by its path, ``orders[1]["items"]``, which
inserts and removals before it move.  These tests check that records carry the path as
of the operation, that undo(), history() and restore() go by identity, and, on seeded
random sequences of nested operations (moves included), that ``restore(name, at=t)`` of
a versioned deep container gives exactly the nested value it held at every t.
"""

from __future__ import annotations

import random
import time

import pytest

import safe_data as sd
from safe_data import IncompleteHistoryError
from safe_data.journal import codec
from safe_data.journal import format as fmt

try:
    from safe_data import _core
except ImportError:  # a run without the C extension
    _core = None


def plain(value):
    """A nested value as builtins, as restore() gives it."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in dict.items(value)}
    if isinstance(value, set):
        return set(value)
    return value


# --- undo, labels and history by identity -----------------------------------------------------


def test_undo_reverts_the_container_it_is_called_on_after_an_insert_moved_it(journal):
    o = sd.SafeList([{"items": ["A"]}], name="o", journal=journal, deep=True)
    o.insert(0, {"items": ["B"]})
    o[1]["items"].pop()
    o[0]["items"].pop()
    o[1]["items"].undo()
    assert plain(o) == [{"items": []}, {"items": ["A"]}]


def test_records_carry_the_path_as_of_the_operation(journal):
    o = sd.SafeList([{"items": ["A"]}], name="o", journal=journal, deep=True)
    first = o[0]["items"]
    assert first.name == 'o[0]["items"]'
    o.insert(0, {"items": ["B"]})
    assert first.name == 'o[1]["items"]'
    first.pop()
    d = sd.SafeDict({"a": [1, 2]}, name="d", journal=journal, deep=True)
    moved = d["a"]
    d["b"] = d.pop("a")  # the pop journals the whole list, under d
    moved.pop()
    labels = [(r.container, r.op) for r in journal.records()]
    assert labels == [('o[1]["items"]', "pop"), ("d", "pop"), ('d["b"]', "pop")]
    ids = {r.container: r.container_id for r in journal.records()}
    assert ids == {'o[1]["items"]': first.container_id, "d": d.container_id, 'd["b"]': moved.container_id}
    assert len(set(ids.values())) == 3


def test_a_nested_container_keeps_its_last_path_once_taken_out(journal):
    o = sd.SafeList([[1, 2], [3]], name="o", journal=journal, deep=True)
    inner = o.pop(0)
    inner.pop()
    assert [r.container for r in journal.records()] == ["o", "o[0]"]


def test_two_containers_of_one_name_keep_their_own_history_and_undo(journal):
    a = sd.SafeList([1, 2], name="same", journal=journal)
    b = sd.SafeList([3, 4], name="same", journal=journal)
    a.pop()
    b.pop()
    assert [r.values for r in sd.history(a)] == [[2]]
    assert [r.values for r in sd.history(b)] == [[4]]
    assert len(sd.history("same", journal)) == 2
    a.undo()
    assert (a, b) == ([1, 2], [3])


def test_undo_of_a_nested_container_records_under_its_identity(journal):
    d = sd.SafeDict({"x": {"k": 1}}, name="d", journal=journal, deep=True)
    d["x"]["k"] = 2
    d["y"] = d.pop("x")
    d["y"].undo()
    assert plain(d) == {"y": {"k": 1}}
    undo = [r for r in journal.records() if r.op == "undo"]
    assert [(r.container, r.container_id) for r in undo] == [('d["y"]', d["y"].container_id)]


def test_history_and_restore_of_a_container_object(journal):
    o = sd.SafeList([[1]], name="o", journal=journal, deep=True, versioned=True)
    inner = o[0]
    inner.append(2)
    o.insert(0, [0])
    inner.pop(0)
    assert [r.op for r in sd.history(inner)] == ["snapshot", "insert", "pop"]
    assert sd.restore(inner) == [2]
    assert sd.restore(o) == [[0], [2]]


def test_a_reinit_keeps_the_settings_of_the_container(journal):
    """``__init__`` again takes deep and versioned from the container, not from its
    (default) arguments: it converted nothing and wrote no snapshot before."""
    a = sd.SafeList([], name="a", journal=journal, deep=True, versioned=True)
    a.__init__([[1]])
    assert type(a[0]) is not list and a[0].versioned
    a[0].append(2)
    assert sd.restore("a", journal=journal) == [[1, 2]]


def test_a_reinit_keeps_the_identity(journal):
    a = sd.SafeList([1], name="a", journal=journal, versioned=True)
    number = a.container_id
    a.__init__([2, 3])
    a.pop()
    assert a.container_id == number
    assert sd.restore("a", journal=journal) == [2]


# --- restore never silently wrong ---------------------------------------------------------------


def test_restore_refuses_a_nested_container_without_history(journal):
    """A plain container stored in a versioned one: what was added to it later is not
    recorded, so restore() cannot answer; it used to give the copy stored at the time."""
    x = sd.SafeList([1], name="x", journal=journal)
    v = sd.SafeList([], name="v", journal=journal, versioned=True)
    v.append(x)
    x.append(2)
    with pytest.raises(IncompleteHistoryError) as info:
        sd.restore("v", journal=journal)
    assert info.value.reason == "nested"
    assert info.value.partial == [[1]]


def test_restore_refuses_a_nested_container_of_another_journal(journal, tmp_path):
    other = sd.Journal(tmp_path / "other")
    try:
        x = sd.SafeList([1], name="x", journal=other, versioned=True)
        v = sd.SafeList([], name="v", journal=journal, versioned=True)
        v.append(x)
        with pytest.raises(IncompleteHistoryError) as info:
            sd.restore("v", journal=journal)
        assert info.value.reason == "nested"
    finally:
        other.close()


def test_restore_finds_a_versioned_container_stored_from_elsewhere(journal):
    """Its records are under its own name, not under the parent's: restore looks further."""
    x = sd.SafeList([1], name="x", journal=journal, versioned=True)
    v = sd.SafeList([], name="v", journal=journal, versioned=True)
    v.append(x)
    x.append(2)
    assert sd.restore("v", journal=journal) == [[1, 2]]


# --- the format ------------------------------------------------------------------------------


def nested_payload(inner_tag):
    return bytes([fmt.T_LIST, 1, fmt.T_NESTED, 5, inner_tag, 0])


@pytest.mark.parametrize("decode", [codec.decode_values] + ([_core.decode_values] if _core else []))
def test_both_decoders_read_a_nested_container(decode):
    assert decode(nested_payload(fmt.T_LIST), None, False, 1) == [[[]]]
    assert decode(nested_payload(fmt.T_DICT), None, False, 1, True) == [[codec.NestedContainer(5, {})]]
    with pytest.raises(sd.errors.CorruptRecordError, match="not a list, dict or set"):
        decode(nested_payload(fmt.T_TUPLE), None, False, 1)
    with pytest.raises(sd.errors.CorruptRecordError, match="not a list, dict or set"):
        decode(
            bytes([fmt.T_LIST, 1]) + bytes([fmt.T_NESTED, 1]) * 100 + bytes([fmt.T_LIST, 0]), None, False, 1
        )


def test_a_nested_safe_container_is_written_with_its_number(journal):
    outer = sd.SafeList([[1]], name="outer", journal=journal, deep=True)
    outer.pop()
    (record,) = journal.records(nested_ids=True)
    assert record.values == [codec.NestedContainer(record.container_id + 1, [1])]
    (record,) = journal.records()
    assert record.values == [[1]]


# --- restore at every moment of random nested histories ------------------------------------------


class NestedHistory:
    """Random operations on the containers of one versioned deep tree, its plain value
    noted after each; then restore() at each of those moments must give that value."""

    def __init__(self, journal, root, seed):
        self.journal, self.root, self.rng = journal, root, random.Random(seed)
        self.moments = []
        self.counter = 0
        self.most_containers = 0

    def value(self, depth=0):
        self.counter += 1
        n, rng = self.counter, self.rng
        choice = rng.randrange(6 if depth < 2 else 3)
        if choice == 0:
            return n
        if choice == 1:
            return f"s{n}"
        if choice == 2:
            return (n, "t")
        if choice == 3:
            return [self.value(depth + 1) for _ in range(rng.randrange(3))]
        if choice == 4:
            return {f"k{self.counter + i}": self.value(depth + 1) for i in range(rng.randrange(3))}
        return {n, n + 1}

    def containers(self, value=None, out=None):
        value = self.root if value is None else value
        out = [] if out is None else out
        if isinstance(value, (sd.SafeList, sd.SafeDict, sd.SafeSet)):
            out.append(value)
            items = (
                list(value)
                if isinstance(value, list)
                else list(dict.values(value))
                if isinstance(value, dict)
                else []
            )
            for item in items:
                self.containers(item, out)
        return out

    def step(self):
        rng = self.rng
        containers = self.containers()
        self.most_containers = max(self.most_containers, len(containers))
        target = rng.choice(containers)
        if isinstance(target, list):
            self.list_op(target)
        elif isinstance(target, dict):
            self.dict_op(target)
        else:
            self.set_op(target)
        noted = time.time_ns()
        while time.time_ns() <= noted:  # the next record is strictly later
            pass
        self.moments.append((noted, plain(self.root)))

    def list_op(self, lst):
        rng, n = self.rng, len(lst)
        op = rng.randrange(12)
        if op == 0 or n == 0:
            lst.append(self.value())
        elif op == 1:
            lst.insert(rng.randrange(n + 1), self.value())
        elif op == 2:
            lst.pop(rng.randrange(n))
        elif op == 3:
            del lst[rng.randrange(n)]
        elif op == 4:
            i = rng.randrange(n)
            del lst[i : i + rng.randrange(1, 3)]
        elif op == 5:
            lst[rng.randrange(n)] = self.value()
        elif op == 6:
            i = rng.randrange(n)
            lst[i : i + 1] = [self.value(), self.value()]
        elif op == 7:
            lst.extend([self.value()])
        elif op == 8:
            lst.reverse()
        elif op == 9:  # a move inside the list: identities change places
            lst.insert(rng.randrange(n), lst.pop(rng.randrange(n)))
        elif op == 10:
            self.move_out(lst, rng.randrange(n))
        else:
            lst.clear() if rng.random() < 0.3 else lst.extend([self.value()])

    def dict_op(self, d):
        rng = self.rng
        keys = list(d)
        op = rng.randrange(9)
        if op == 0 or not keys:
            d[f"k{rng.randrange(8)}"] = self.value()
        elif op == 1:
            del d[rng.choice(keys)]
        elif op == 2:
            d.pop(rng.choice(keys))
        elif op == 3:
            d.popitem()
        elif op == 4:
            d.update({rng.choice(keys): self.value(), f"k{rng.randrange(8)}": self.value()})
        elif op == 5:
            d.setdefault(f"k{rng.randrange(8)}", self.value())
        elif op == 6:  # a move to another key
            d[f"k{rng.randrange(8)}"] = d.pop(rng.choice(keys))
        elif op == 7:
            self.move_out(d, rng.choice(keys))
        else:
            d.clear() if rng.random() < 0.3 else d.update(x=self.value())

    def set_op(self, s):
        rng = self.rng
        op = rng.randrange(6)
        if op == 0 or not s:
            s.add((self.value(2), "e") if rng.random() < 0.5 else rng.randrange(5))
        elif op == 1:
            s.discard(rng.choice(list(s)))
        elif op == 2:
            s.pop()
        elif op == 3:
            s -= {rng.choice(list(s))}
        elif op == 4:
            s ^= {rng.randrange(5)}
        else:
            s.clear()

    def move_out(self, parent, where):
        """Take a container out of ``parent`` and store it in another list or dict of the
        tree (not inside itself)."""
        item = parent[where]
        if not isinstance(item, (sd.SafeList, sd.SafeDict)):
            return
        inside = {id(c) for c in self.containers(item)}
        targets = [c for c in self.containers() if isinstance(c, (list, dict)) and id(c) not in inside]
        target = self.rng.choice(targets)
        item = parent.pop(where)
        if isinstance(target, list):
            target.append(item)
        else:
            target[f"m{self.counter}"] = item

    def check(self, name):
        for at, expected in self.moments:
            assert sd.restore(name, at=at, journal=self.journal) == expected, at


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("root_kind", ["dict", "list"])
def test_restore_gives_the_nested_value_at_every_moment(tmp_path, root_kind, seed):
    journal = sd.Journal(tmp_path / "journal", segment_size=64 * 1024)  # rotations too
    try:
        make = sd.SafeDict if root_kind == "dict" else sd.SafeList
        root = make(name="root", journal=journal, deep=True, versioned=True)
        history = NestedHistory(journal, root, seed)
        for _ in range(60):
            history.step()
        assert history.most_containers > 5  # the tree did grow nested containers
        history.check("root")
    finally:
        journal.close()
