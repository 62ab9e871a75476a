"""Every method of list, dict and set is accounted for (house rule 3).

A new Python version that adds a method fails here until someone decides whether it
reads, adds, reorders or discards -- and, if it discards, overrides it.
"""

import pytest

OBJECT_PROTOCOL = {
    "__class__", "__delattr__", "__dir__", "__doc__", "__eq__", "__format__", "__ge__",
    "__getattribute__", "__getstate__", "__gt__", "__hash__", "__init_subclass__", "__le__",
    "__lt__", "__ne__", "__new__", "__reduce__", "__reduce_ex__", "__repr__", "__setattr__",
    "__sizeof__", "__str__", "__subclasshook__", "__class_getitem__",
    "__module__",  # listed by dir(collections.deque) since CPython 3.13: an attribute, no behaviour
}

CLASSIFICATION = {
    list: {
        "reading": {"__contains__", "__getitem__", "__iter__", "__len__", "__reversed__", "copy",
                    "count", "index", "__add__", "__mul__", "__rmul__"},
        "adding": {"append", "extend", "insert", "__iadd__"},
        "reordering": {"sort", "reverse"},
        "discarding": {"clear", "pop", "remove", "__delitem__", "__setitem__", "__imul__", "__init__"},
    },
    dict: {
        "reading": {"__contains__", "__getitem__", "__iter__", "__len__", "__reversed__", "copy",
                    "get", "items", "keys", "values", "fromkeys", "__or__", "__ror__"},
        "adding": {"setdefault"},
        "reordering": set(),
        "discarding": {"clear", "pop", "popitem", "__delitem__", "__setitem__", "update", "__ior__",
                       "__init__"},
    },
    set: {
        "reading": {"__contains__", "__iter__", "__len__", "copy", "difference", "intersection",
                    "isdisjoint", "issubset", "issuperset", "symmetric_difference", "union",
                    "__and__", "__or__", "__rand__", "__ror__", "__rsub__", "__rxor__", "__sub__",
                    "__xor__"},
        "adding": {"add", "update", "__ior__"},
        "reordering": set(),
        "discarding": {"clear", "pop", "remove", "discard", "difference_update",
                       "intersection_update", "symmetric_difference_update", "__isub__",
                       "__iand__", "__ixor__", "__init__"},
    },
}


def safe_class(impl, builtin):
    """The implementation's safe subclass of ``builtin``."""
    return {list: impl.SafeList, dict: impl.SafeDict, set: impl.SafeSet}[builtin]


@pytest.mark.parametrize("builtin", [list, dict, set], ids=lambda t: t.__name__)
def test_every_method_is_classified(builtin):
    classified = set().union(*CLASSIFICATION[builtin].values())
    unknown = sorted(set(dir(builtin)) - classified - OBJECT_PROTOCOL)
    assert not unknown, f"classify these {builtin.__name__} methods: {unknown}"


@pytest.mark.parametrize("builtin", [list, dict, set], ids=lambda t: t.__name__)
def test_every_discarding_method_is_overridden(impl, builtin):
    safe = safe_class(impl, builtin)
    for name in CLASSIFICATION[builtin]["discarding"]:
        if name in dir(builtin):
            assert name in vars(safe), f"{safe.__name__} does not override {name}"
            assert getattr(safe, name) is not getattr(builtin, name)


@pytest.mark.parametrize("builtin", [list, dict, set], ids=lambda t: t.__name__)
def test_reading_methods_run_on_the_builtin_slots(impl, builtin):
    """Drop-in speed: nothing that only reads is overridden."""
    safe = safe_class(impl, builtin)
    for name in CLASSIFICATION[builtin]["reading"]:
        assert name not in vars(safe), f"{safe.__name__} needlessly overrides {name}"


def test_plain_safe_list_keeps_the_builtin_adding_methods(impl):
    """append & co. run on list's own slots (and the interpreter's fast path for them);
    only deep=True, which must convert what is added, creates a class that overrides them.
    The pure twin's plain SafeList overrides them to take the operation lock (Python code
    cannot take items out of a list in one atomic step, as the C discards do)."""
    for name in CLASSIFICATION[list]["adding"]:
        assert (name in vars(impl.SafeList)) is (not impl.extension), name
    deep = impl.SafeList(deep=True)
    assert isinstance(deep, impl.SafeList) and type(deep) is not impl.SafeList
    for name in CLASSIFICATION[list]["adding"]:
        assert name in vars(type(deep)), name
