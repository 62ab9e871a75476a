"""Every method of list, dict and set is accounted for (house rule 3).

A new Python version that adds a method fails here until someone decides whether it
reads, adds, reorders or discards -- and, if it discards, overrides it.
"""

import pytest

from ._helpers import CLASSIFICATION, OBJECT_PROTOCOL


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
