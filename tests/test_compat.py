"""What earlier versions made keeps working: their import paths and their pickles.

A pickle names the module of each function and class it needs, so a module that moves
would make every pickle of a safe container written before the move unloadable. The
pickles below were made by version 0.1.0, before the containers' helpers moved into
``safe_data.containers``.
"""

import pickle

import pytest

import safe_data as sd

#: pickle.dumps(SafeList([1, 2], name="l"), protocol=4) by 0.1.0
OLD_SAFELIST = (
    b"\x80\x04\x95v\x00\x00\x00\x00\x00\x00\x00\x8c\x12safe_data._support\x94\x8c"
    b"\x07rebuild\x94\x93\x94\x8c\x04list\x94]\x94(K\x01K\x02e}\x94(\x8c\x04name\x94"
    b"\x8c\x01l\x94\x8c\x07journal\x94N\x8c\x0ecapture_caller\x94\x89\x8c\x04deep\x94"
    b"\x89\x8c\tversioned\x94\x89u\x87\x94R\x94."
)
#: pickle.dumps(SafeDeque([4], name="q"), protocol=4) by 0.1.0
OLD_SAFEDEQUE = (
    b"\x80\x04\x95z\x00\x00\x00\x00\x00\x00\x00\x8c\x11safe_data.protect\x94\x8c"
    b"\x08_rebuild\x94\x93\x94h\x00\x8c\tSafeDeque\x94\x93\x94)\x85\x94}\x94(\x8c"
    b"\x04name\x94\x8c\x01q\x94\x8c\x07journal\x94N\x8c\x0ecapture_caller\x94\x89"
    b"\x8c\x04deep\x94\x89\x8c\x06maxlen\x94Nu\x87\x94R\x94K\x04a."
)


def test_a_safe_container_pickled_by_an_earlier_version_loads():
    restored = pickle.loads(OLD_SAFELIST)
    assert type(restored) is sd.SafeList and restored == [1, 2] and restored.name == "l"
    restored.pop()
    assert [r.values for r in sd.history("l")] == [[2]]  # and it journals


def test_a_protected_deque_pickled_by_an_earlier_version_loads():
    restored = pickle.loads(OLD_SAFEDEQUE)
    assert type(restored) is sd.SafeDeque and list(restored) == [4] and restored.name == "q"


@pytest.mark.parametrize(
    "old, new",
    [
        ("safe_data.protect", "safe_data.containers.protect"),
        ("safe_data.proxies", "safe_data.containers.proxies"),
        ("safe_data.patching", "safe_data.containers.patching"),
    ],
)
def test_moved_modules_answer_to_their_old_names(old, new):
    import importlib

    assert importlib.import_module(old) is importlib.import_module(new)
    assert getattr(sd, old.rpartition(".")[2]) is importlib.import_module(new)
