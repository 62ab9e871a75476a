"""Helpers both container implementations share: names, journal lookup, unpickling.

Nothing here is on the hot path; the C and Python containers call it on construction,
deep conversion and pickling only.
"""

from __future__ import annotations

import sys

from ..journal import registry
from ..journal.codec import reading

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from types import FrameType

#: where our own container classes live (a pickle names them by kind, not by class)
_OUR_MODULES = ("safe_data.containers._containers_c", "safe_data.containers._containers_py")


def child_name(parent: str, key) -> str:
    """The name of a nested container: ``orders[3]["items"]``."""
    if type(key) is str:
        import json  # first use here, not at import safe_data: json costs milliseconds

        return f"{parent}[{json.dumps(key)}]"
    return f"{parent}[{key!r}]"


def auto_name(kind: str, skip_module: str | None = None) -> str:
    """A default name from where the container was created: ``list@myapp.orders:42``."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and (frame.f_globals.get("__name__") in (__name__, skip_module)):
        frame = frame.f_back
    if frame is None:
        return kind
    return f"{kind}@{frame.f_globals.get('__name__', '?')}:{frame.f_lineno}"


def caller_of(skip_module: str | None = None):
    """(filename, line, function) of the nearest frame outside safe_data's containers."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, skip_module):
        frame = frame.f_back
    if frame is None:
        return None
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


def update_pairs(args: tuple, kwargs: dict) -> list:
    """The (key, value) pairs ``dict.update(*args, **kwargs)`` would store, read once (the
    caller's mapping or iterable runs before any lock is taken), with dict's own errors."""
    if len(args) > 1:
        raise TypeError(f"update expected at most 1 argument, got {len(args)}")
    pairs = []
    if args:
        other = args[0]
        if hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]
        else:
            for n, item in enumerate(other):
                item = tuple(item)
                if len(item) != 2:
                    raise ValueError(
                        f"dictionary update sequence element #{n} has length {len(item)}; 2 is required"
                    )
                pairs.append(item)
    pairs.extend(kwargs.items())
    return pairs


def resolve_journal(journal):
    """``journal``, or (None) the default journal, read from the registry at every call:
    configure() replaces it (C: _containers_c._bind reads the same slot)."""
    if journal is None:
        journal = registry._default_slot[0]
        if journal is None:
            journal = registry.default()
    return journal


def settings_of(container, *, for_pickle: bool = False) -> dict:
    """The constructor keywords that recreate ``container``'s behaviour."""
    settings = {
        "name": container.name,
        "journal": container.journal,
        "capture_caller": container.capture_caller,
    }
    if not isinstance(container, set):
        settings["deep"] = container.deep
    settings["versioned"] = container.versioned
    if for_pickle:  # a pickle names the journal by path (None: the default journal)
        journal = settings["journal"]
        settings["journal"] = None if registry.is_default(journal) else journal.path
    return settings


def reduce(container, kind: str, contents):
    """``__reduce__`` of a safe container: its builtin contents and its settings."""
    target = kind if type(container).__module__ in _OUR_MODULES else type(container)
    return (rebuild, (target, contents, settings_of(container, for_pickle=True)))


def copy_of(container):
    return type(container)(container, **settings_of(container))


def deepcopy_of(container, memo, fill, items):
    """A deep copy with the same settings; ``fill(new, copied_items)`` is the builtin's
    own update method, so copying journals nothing."""
    from copy import deepcopy  # (the only use of copy: not loaded with the containers)

    new = type(container)(**settings_of(container))
    memo[id(container)] = new
    fill(new, deepcopy(items, memo))
    return new


def rebuild(cls_or_kind, contents, settings):
    """Unpickle a safe container: ``cls_or_kind`` is "list"/"dict"/"set" for our own
    classes (so a pickle made with the C extension loads with the Python twin) or the
    user's subclass."""
    if reading():  # a value read back from the journal: data, not a live container
        return {"list": list, "dict": dict, "set": set}.get(cls_or_kind, type(contents))(contents)
    if isinstance(cls_or_kind, str):
        from .. import containers  # (they import this module)

        cls = {"list": containers.SafeList, "dict": containers.SafeDict, "set": containers.SafeSet}[
            cls_or_kind
        ]
    else:
        cls = cls_or_kind
    settings = dict(settings)
    path = settings.pop("journal", None)
    if path is None:
        journal = None
    else:
        from ..journal.journal import journal_at  # (loaded with the first journal, not with the containers)

        journal = journal_at(path)
    return cls(contents, journal=journal, **settings)
