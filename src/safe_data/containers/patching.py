"""``patched()``: ``list(...)``, ``dict(...)`` and ``set(...)`` in your code make safe containers.

``install()`` replaces the names ``list``, ``dict`` and ``set`` in ``builtins`` with
stand-ins; ``uninstall()`` puts the originals back; ``patched()`` does both around a block
(nesting counts: the originals return when the outermost block exits, exception or not).

A stand-in is a class whose metaclass makes it behave like the builtin it replaces:

- calling it from *your* code makes a ``SafeList``/``SafeDict``/``SafeSet`` (named where
  it was called, ``list@myapp.orders:12``), filled by the builtin's own ``__init__``, so
  ``dict(name="x")`` is ``{"name": "x"}`` and errors are the builtin's.  Calls from the
  standard library, from installed packages (site-packages) and from safe_data itself get
  the builtin: they did not ask for journaling, and the journal must not journal itself;
- ``isinstance(x, list)`` and ``issubclass(C, list)`` answer as for the builtin;
- ``class Foo(list)`` inside the block subclasses the builtin, exactly as outside it;
- ``list[int]`` is the builtin's generic alias, and the builtin's class attributes
  (``dict.fromkeys``, ``list.sort``) are inherited.
"""

from __future__ import annotations

import builtins
import os
import sys
import threading
import types
from contextlib import contextmanager

from . import SafeDict, SafeList, SafeSet, _support

__all__ = ["install", "patched", "uninstall"]

_REAL = {"list": list, "dict": dict, "set": set}
_SAFE = {"list": SafeList, "dict": SafeDict, "set": SafeSet}


class _StandIn(type):
    """The metaclass of the stand-ins (see the module docstring)."""

    def __new__(mcls, name, bases, namespace, **kwargs):
        # a class statement naming a stand-in as a base: build it on the builtin instead
        bases = tuple(base._real if isinstance(base, _StandIn) else base for base in bases)
        return type(name, bases, namespace, **kwargs)

    def __call__(cls, *args, **kwargs):
        # list() and set() refuse keywords: let the builtin say so (their __init__, on a
        # subclass with its own __new__, would ignore them)
        if _state.creating or (kwargs and cls._real is not dict) or not _is_user_code(sys._getframe(1)):
            return cls._real(*args, **kwargs)
        _state.creating = True  # whatever creating it calls gets builtins (no recursion)
        try:
            new = cls._safe(name=_support.auto_name(cls.__name__, __name__))
        finally:
            _state.creating = False
        cls._real.__init__(new, *args, **kwargs)  # the builtin's own argument handling
        return new

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._real)

    def __subclasscheck__(cls, subclass):
        return issubclass(subclass, cls._real)

    def __repr__(cls):
        return f"<safe_data stand-in for {cls._real!r}>"


def _stand_in(name: str) -> _StandIn:
    real = _REAL[name]
    namespace = {
        "_real": real,
        "_safe": _SAFE[name],
        "__doc__": real.__doc__,
        # pickle finds builtins.list under these while the stand-in is installed
        "__module__": "builtins",
        "__qualname__": name,
        "__class_getitem__": classmethod(lambda cls, item: types.GenericAlias(cls._real, item)),
    }
    return type.__new__(_StandIn, name, (real,), namespace)  # type.__new__: not a redirect


_STAND_INS = {name: _stand_in(name) for name in _REAL}


class _State(threading.local):
    creating = False


_state = _State()


def _library_dirs() -> tuple[str, ...]:
    import site
    import sysconfig

    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages())
    paths.add(site.getusersitepackages())
    return tuple(os.path.join(os.path.realpath(p), "") for p in paths if p)


_LIBRARY_DIRS = _library_dirs()
_user_code: dict[tuple[str, str], bool] = {}  # (module, file): is it user code


def _is_user_code(frame) -> bool:
    """Not safe_data, not the standard library, not an installed package."""
    module = frame.f_globals.get("__name__") or ""
    filename = frame.f_code.co_filename
    known = _user_code.get((module, filename))
    if known is None:
        top = module.partition(".")[0]
        known = _user_code[module, filename] = not (
            top == "safe_data"
            or top in sys.stdlib_module_names
            or os.path.realpath(filename).startswith(_LIBRARY_DIRS)
        )
    return known


# --- installing ------------------------------------------------------------------------------

_lock = threading.Lock()
_depth = 0
_replaced: dict[str, object] = {}  # what builtins held before the outermost install
_shielded: list[tuple[dict, str]] = []


def _shield_own_modules() -> None:
    """safe_data's own code compares types (``type(x) is list``) and keys tables by them:
    give its loaded modules the real builtins as globals while the stand-ins are installed."""
    for module_name, module in list(sys.modules.items()):
        if module is not None and (module_name == "safe_data" or module_name.startswith("safe_data.")):
            namespace = vars(module)
            for name, real in _REAL.items():
                if name not in namespace:
                    namespace[name] = real
                    _shielded.append((namespace, name))


def _unshield_own_modules() -> None:
    for namespace, name in _shielded:
        if namespace.get(name) is _REAL[name]:
            del namespace[name]
    _shielded.clear()


def install() -> None:
    """Make ``list(...)``, ``dict(...)`` and ``set(...)`` calls in your code create
    ``SafeList``/``SafeDict``/``SafeSet`` until the matching :func:`uninstall`.

    Process-wide (every thread), and nestable: each ``install()`` needs one
    ``uninstall()``.  The containers use the default journal
    (:func:`safe_data.configure`).  See docs/protecting.md for what it cannot reach.
    """
    global _depth
    with _lock:
        if _depth == 0:
            _shield_own_modules()
            for name, stand_in in _STAND_INS.items():
                _replaced[name] = getattr(builtins, name)
                setattr(builtins, name, stand_in)
        _depth += 1


def uninstall() -> None:
    """Undo one :func:`install`; the last one restores the original builtins.

    Raises
    ------
    RuntimeError
        If there is no install to undo.
    """
    global _depth
    with _lock:
        if _depth == 0:
            raise RuntimeError("safe_data.uninstall() without a matching install()")
        _depth -= 1
        if _depth:
            return
        for name, stand_in in _STAND_INS.items():
            if getattr(builtins, name) is stand_in:  # else someone replaced it since: theirs
                setattr(builtins, name, _replaced[name])
        _replaced.clear()
        _unshield_own_modules()


@contextmanager
def patched():
    """A block (or, as a decorator, a function) in which ``list(...)``, ``dict(...)`` and
    ``set(...)`` calls in your code create ``SafeList``/``SafeDict``/``SafeSet``.

    The builtins are restored when the block exits, also by an exception; blocks nest.
    See :func:`install`.
    """
    install()
    try:
        yield
    finally:
        uninstall()
