"""Re-entrant changes: code that an operation runs, changing the container it runs for.

Journaling a value may run code of the value (``__reduce__``), and finding one may run
its ``__eq__``; that code can reach the very container being changed.  The rule
(docs/guarantees.md, "Re-entrant changes"): such a change is refused with
ReentrantChangeError naming the container, and the operation that ran the code either
completes or (when the error reaches it) leaves the container as it was.  Adding through a
plain SafeList's or SafeSet's own methods is always allowed, and a change of *another*
container is an ordinary operation.  Whatever happens, nothing leaves unjournaled.
"""

from __future__ import annotations

from collections import Counter

import pytest

import safe_data as sd
from safe_data.history import ADDING_OPS

from ._helpers import discarded


class Meddler:
    """A value whose pickling runs ``action`` once (journaling it pickles it)."""

    def __init__(self, tag, action=None):
        self.tag = tag
        self.action = action

    def __reduce__(self):
        action, self.action = self.action, None
        if action is not None:
            action()
        return (Meddler, (self.tag,))

    def __eq__(self, other):
        return isinstance(other, Meddler) and other.tag == self.tag

    def __hash__(self):
        return hash(self.tag)

    def __repr__(self):
        return f"Meddler({self.tag!r})"


def tags(values):
    return sorted(v.tag if isinstance(v, Meddler) else v for v in values)


def journaled(journal, name):
    return [
        v
        for r in journal.records(name, on_error="raise")
        if r.op not in ADDING_OPS
        for v in (r.values.values() if isinstance(r.values, dict) else r.values)
    ]


@pytest.mark.parametrize("operation", ["pop", "pop0", "remove", "del", "set", "clear", "imul0"])
def test_a_value_changing_its_own_list_while_journaled_is_refused(journal, operation):
    L = sd.SafeList(["a", "b", "c"], name="L", journal=journal)
    m = Meddler("m", lambda: L.pop())
    L.insert(0, m) if operation == "pop0" else L.append(m)
    before = list(L)
    with pytest.raises(sd.ReentrantChangeError, match="'L'"):
        if operation in ("pop", "pop0"):
            L.pop(0 if operation == "pop0" else -1)
        elif operation == "remove":
            L.remove(m)
        elif operation == "del":
            del L[L.index(m)]
        elif operation == "set":
            L[L.index(m)] = "new"
        elif operation == "clear":
            L.clear()
        else:
            L *= 0
    assert L == before
    assert journaled(journal, "L") == []


def test_a_dict_overwrite_whose_old_value_overwrites_the_same_key_is_refused(journal):
    D = sd.SafeDict(name="D", journal=journal)
    D["k"] = Meddler("old", lambda: D.__setitem__("k", "meddled"))
    with pytest.raises(sd.ReentrantChangeError, match="'D'"):
        D["k"] = "new"
    assert D == {"k": Meddler("old")}
    assert journaled(journal, "D") == []
    D["k"] = "new"  # once its __reduce__ has run, the value journals as any other
    assert tags(journaled(journal, "D")) == ["old"]


def test_a_set_clear_whose_element_removes_another_is_refused(journal):
    S = sd.SafeSet(["a", "b"], name="S", journal=journal)
    S.add(Meddler("m", lambda: S.discard("a")))
    with pytest.raises(sd.ReentrantChangeError, match="'S'"):
        S.clear()
    assert tags(S) == ["a", "b", "m"]
    assert journaled(journal, "S") == []


def test_an_eq_that_changes_the_list_during_remove_is_refused(journal):
    L = sd.SafeList(name="L", journal=journal)

    class Sneaky:
        def __eq__(self, other):
            L.pop(0)
            return False

    L.extend([Sneaky(), "target"])
    with pytest.raises(sd.ReentrantChangeError):
        L.remove("target")
    assert len(L) == 2 and journaled(journal, "L") == []


@pytest.mark.parametrize("operation", ["pop", "clear", "del_slice"])
def test_adding_to_a_plain_list_while_it_journals_is_kept(journal, operation):
    L = sd.SafeList(["a", "b"], name="L", journal=journal)
    L.append(Meddler("m", lambda: L.extend(["added", "also added"])))
    if operation == "pop":
        L.pop()
    elif operation == "clear":
        L.clear()
    else:
        del L[1:]
    gone = journaled(journal, "L")
    assert Counter(tags(gone)) + Counter(tags(L)) == Counter(["a", "b", "m", "added", "also added"])
    assert "added" in L and "also added" in L


def test_adding_to_a_plain_set_while_it_clears_is_kept(journal):
    S = sd.SafeSet(["a"], name="S", journal=journal)
    S.add(Meddler("m", lambda: S.add("added")))
    S.clear()
    assert S == {"added"}
    assert tags(journaled(journal, "S")) == ["a", "m"]


def test_adding_to_a_versioned_list_while_it_journals_is_refused(journal):
    """A versioned list journals adds; one between a removal and its record would make
    replaying the history wrong, so it is refused like any other change."""
    L = sd.SafeList(["a"], name="L", journal=journal, versioned=True)
    m = Meddler("m")
    L.append(m)  # journaled as an "insert" (pickled once) ...
    m.action = lambda: L.append("added")  # ... then armed for the pop's record
    with pytest.raises(sd.ReentrantChangeError):
        L.pop()
    assert tags(L) == ["a", "m"]
    assert tags(sd.restore("L", journal=journal)) == ["a", "m"]


def test_changing_another_container_while_journaling_is_an_ordinary_operation(journal):
    A = sd.SafeList(["a1", "a2"], name="A", journal=journal)
    B = sd.SafeDict({"b": "b1"}, name="B", journal=journal)
    A.append(Meddler("m", lambda: (B.pop("b"), A2.clear())))
    A2 = sd.SafeSet(["x"], name="A2", journal=journal)
    assert A.pop().tag == "m"
    assert A == ["a1", "a2"] and B == {} and A2 == set()
    assert tags(journaled(journal, "A")) == ["m"]
    assert journaled(journal, "B") == ["b1"] and journaled(journal, "A2") == ["x"]


def test_the_refusal_names_the_container_and_is_a_runtime_error(journal):
    L = sd.SafeList(["x"], name="orders", journal=journal)
    L.append(Meddler("m", lambda: L.clear()))
    with pytest.raises(RuntimeError) as info:
        L.pop()
    assert isinstance(info.value, sd.ReentrantChangeError)
    assert info.value.container == "orders" and "'orders'" in str(info.value)
    assert discarded(journal) == []


@pytest.mark.parametrize("kind", ["deque", "sequence proxy", "OrderedDict", "mapping proxy"])
def test_wrappers_refuse_a_change_from_inside_their_own_operation(journal, kind):
    import collections

    if kind in ("deque", "sequence proxy"):
        W = (
            sd.make_safe(collections.deque(["a", "b"]), name="W", journal=journal)
            if kind == "deque"
            else sd.proxy(["a", "b"], name="W", journal=journal)
        )
        W.append(Meddler("m", lambda: W.append("added")))
        change = W.clear
    else:
        W = (
            sd.make_safe(collections.OrderedDict(a="a"), name="W", journal=journal)
            if kind == "OrderedDict"
            else sd.proxy({"a": "a"}, name="W", journal=journal)
        )
        W["m"] = Meddler("m", lambda: W.pop("a"))
        change = lambda: W.__setitem__("m", "new")  # noqa: E731
    before = list(W.values()) if hasattr(W, "values") else list(W)
    with pytest.raises(sd.ReentrantChangeError, match="'W'"):
        change()
    assert (list(W.values()) if hasattr(W, "values") else list(W)) == before
    assert journaled(journal, "W") == []
