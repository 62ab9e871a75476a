"""patched(), install(), uninstall(): list(), dict() and set() in user code make safe containers."""

import builtins
import inspect
import shlex
import sys
import threading
from collections import defaultdict

import pytest

import safe_data
from safe_data import _core_py
from safe_data.containers.patching import install, patched, uninstall

from ._helpers import discarded

REAL = {"list": list, "dict": dict, "set": set}  # captured at import, before any patching
L, D, S = list, dict, set


def builtins_are_real() -> bool:
    return all(getattr(builtins, name) is real for name, real in REAL.items())


@pytest.fixture(autouse=True)
def _always_restored():
    yield
    assert builtins_are_real(), "a test left the builtins patched"


def test_calls_in_user_code_make_safe_containers():
    with patched():
        items = list("ab")
        line = inspect.currentframe().f_lineno - 1
        prefs = dict({"theme": "light"}, name="me", journal="j")  # keywords are keys, as for dict
        tags = set([1, 2])
        empty = list()
    assert isinstance(items, safe_data.SafeList) and items == ["a", "b"]
    assert items.name == f"list@{__name__}:{line}"
    assert isinstance(prefs, safe_data.SafeDict) and prefs == {"theme": "light", "name": "me", "journal": "j"}
    assert isinstance(tags, safe_data.SafeSet) and tags == {1, 2}
    assert isinstance(empty, safe_data.SafeList) and empty == []
    items.pop()
    assert discarded(safe_data.default_journal(), items.name) == ["b"]


def test_arguments_are_checked_as_by_the_builtins():
    with patched():
        for call in (
            lambda: list(1),
            lambda: list([], []),
            lambda: list(x=1),
            lambda: set(a=1),
            lambda: dict(1),
        ):
            with pytest.raises(TypeError):
                call()
        with pytest.raises(ValueError):
            dict([(1, 2, 3)])


def test_builtins_are_restored_on_exit_and_after_an_exception():
    with patched():
        assert not builtins_are_real()
    assert builtins_are_real()
    with pytest.raises(KeyError):
        with patched():
            raise KeyError("boom")
    assert builtins_are_real()


def test_blocks_and_installs_nest():
    with patched():
        with patched():
            pass
        assert isinstance(list(), safe_data.SafeList)  # the outer block still patches
    assert builtins_are_real()
    install()
    install()
    uninstall()
    assert not builtins_are_real()
    uninstall()
    assert builtins_are_real()
    with pytest.raises(RuntimeError, match="without a matching install"):
        uninstall()


def test_a_patched_function():
    @patched()
    def build():
        return dict(a=1)

    assert isinstance(build(), safe_data.SafeDict) and builtins_are_real()


def test_a_name_replaced_meanwhile_by_someone_else_is_left_alone():
    theirs = object()
    try:
        with patched():
            builtins.set = theirs
        assert builtins.set is theirs and builtins.list is L
    finally:
        builtins.set = S


def test_isinstance_and_issubclass_work_as_for_the_builtins():
    for block in (False, True):
        if block:
            install()
        try:
            assert isinstance(safe_data.SafeList(), list) and isinstance([], list)
            assert isinstance(safe_data.SafeDict(), dict) and isinstance({}, dict)
            assert isinstance(safe_data.SafeSet(), set) and isinstance(set(), set)
            assert not isinstance((), list) and not isinstance([], dict)
            assert isinstance([], (tuple, list))
            assert issubclass(safe_data.SafeList, list) and not issubclass(tuple, list)
            match [1]:
                case list():
                    matched = True
            assert matched
        finally:
            if block:
                uninstall()


def test_what_it_cannot_reach():
    with patched():
        literal, comprehension, from_c = [], {k: k for k in "a"}, "a b".split()
        from_stdlib = shlex.split("a b")  # the standard library calls the builtin
        captured = L("ab")  # a name captured before install
    for plain in (literal, comprehension, from_c, from_stdlib, captured):
        assert type(plain) in (L, D)


def test_type_is_comparisons_see_the_stand_in():
    """Documented: inside the block ``list`` names the stand-in, for plain lists too."""
    with patched():
        assert type([]) is not list and type(list()) is not list
        assert isinstance([], list)
    assert type([]) is list


def test_class_statements_subclass_the_real_builtins():
    with patched():

        class Rows(list):
            def first(self):
                return super().__getitem__(0)

    assert Rows.__mro__ == (Rows, L, object) and type(Rows) is type
    rows = Rows([1])
    assert type(rows) is Rows and rows.first() == 1 and not isinstance(rows, safe_data.SafeList)


def test_class_keywords_pass_through():
    class Base:
        def __init_subclass__(cls, tag=None, **kwargs):
            super().__init_subclass__(**kwargs)
            cls.tag = tag

    with patched():

        class Tagged(Base, dict, tag="x"):
            pass

    assert Tagged.tag == "x" and Tagged.__mro__[2] is D


def test_generic_aliases_and_class_attributes_are_the_builtins():
    with patched():
        alias = list[int]
        keys = dict.fromkeys("ab")  # calls the stand-in: a safe dict
        assert list.__name__ == "list" and list.sort is L.sort

        def annotated(rows: list, named: list[str]): ...

    assert alias == L[int] and alias.__origin__ is L
    hints = annotated.__annotations__
    assert hints["rows"] is not L and isinstance([], hints["rows"]) and hints["named"] == L[str]
    assert isinstance(keys, safe_data.SafeDict) and keys == {"a": None, "b": None}


def test_a_defaultdict_made_in_the_block_makes_safe_values():
    with patched():
        groups = defaultdict(list)
    groups["a"].append(1)
    assert isinstance(groups["a"], safe_data.SafeList)


def test_safe_datas_own_modules_see_the_real_builtins(journal):
    with patched():
        for name, module in list(sys.modules.items()):
            if name.startswith("safe_data"):
                assert all(eval(n, vars(module)) is REAL[n] for n in REAL), name
        nested = _core_py.SafeList([[1]], journal=journal, deep=True)  # compares type(v) is list
        assert isinstance(nested[0], _core_py.SafeList)
    assert "list" not in vars(safe_data) and "list" not in vars(_core_py)


def test_other_threads_see_the_patch_too():
    made = []
    with patched():
        thread = threading.Thread(target=lambda: made.append(list()))
        thread.start()
        thread.join()
    assert isinstance(made[0], safe_data.SafeList)
