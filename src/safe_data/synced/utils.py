"""Shared helpers: a cached type classifier, a JSON encoder and small context managers."""

from __future__ import annotations

from json import JSONEncoder

from .numpy_utils import _convert_numpy, _is_numpy_scalar


class AbstractTypeResolver:
    """Classify objects into named abstract types, caching the answer per concrete type.

    ``isinstance`` against the ABCs of :mod:`collections.abc` is slow; synced
    collections classify every value they store, so the answer is remembered per type
    and later lookups cost one dict access.

    Parameters
    ----------
    abstract_type_identifiers : Mapping[str, Callable[[Any], bool]]
        ``{name: predicate}``, tried in order; the first predicate that accepts an object
        names its type.
    cache_blocklist : container of types, optional
        Types whose classification depends on the value, not the type (NumPy arrays:
        0-d ones are scalars), so it is never cached.

    Attributes
    ----------
    abstract_type_identifiers : Mapping[str, Callable[[Any], bool]]
    type_map : Dict[type, str]
        The cache: concrete type -> name (None: no predicate matched).
    """

    def __init__(self, abstract_type_identifiers, cache_blocklist=None):
        self.abstract_type_identifiers = abstract_type_identifiers
        self.type_map = {}
        self.cache_blocklist = cache_blocklist if cache_blocklist is not None else ()

    def get_type(self, obj):
        """The name of ``obj``'s abstract type, or None if no predicate accepts it."""
        cls = type(obj)
        try:
            return self.type_map[cls]
        except KeyError:
            pass
        name = next((name for name, accepts in self.abstract_type_identifiers.items() if accepts(obj)), None)
        if cls not in self.cache_blocklist:
            self.type_map[cls] = name
        return name


def default(o):
    """The JSON-encodable form of a synced collection or a NumPy value (for
    ``json.dumps(default=...)``); raise TypeError for anything else.

    NumPy arrays become lists and NumPy scalars Python scalars, which does not round-trip.
    A synced collection is encoded from its data in memory: call it (``x()``) first if
    the resource may have changed since it was last read.
    """
    converted = _convert_numpy(o)
    if _is_numpy_scalar(converted):
        raise ValueError(
            f"cannot JSON-encode a {type(o).__name__}: NumPy values without a Python "
            "equivalent (extended precision) must be converted by the caller"
        )
    if converted is not o:
        return converted
    to_base = getattr(o, "_to_base", None)
    if to_base is None:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
    return to_base()


class SyncedCollectionJSONEncoder(JSONEncoder):
    """A :class:`json.JSONEncoder` for synced collections and NumPy values (see
    :func:`default`)."""

    def default(self, o):
        try:
            return default(o)
        except TypeError:
            return super().default(o)  # raises the standard TypeError


def _is_abstract(cls) -> bool:
    """Whether ``cls`` has abstract methods left, also while its ``__init_subclass__`` runs
    (before ``ABCMeta`` sets ``__abstractmethods__``); ``inspect.isabstract`` without the
    26 ms import of ``inspect``."""
    names = {name for name, value in vars(cls).items() if getattr(value, "__isabstractmethod__", False)}
    for base in cls.__bases__:
        names.update(getattr(base, "__abstractmethods__", ()))
    return any(getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in names)


class _NullContext:
    """A context manager that does nothing: the lock of a class whose locking is off."""

    __slots__ = ()

    def __enter__(self):
        pass

    def __exit__(self, exc_type, exc_val, exc_tb):
        pass

    def __call__(self):
        return self


class _CounterContext:
    """A context manager counting how deeply it is entered; true while entered."""

    __slots__ = ("_count",)

    def __init__(self):
        self._count = 0

    def __enter__(self):
        self._count += 1

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._count -= 1

    def __bool__(self):
        return self._count > 0

    def __call__(self):
        return self


class _CounterFuncContext(_CounterContext):
    """A :class:`_CounterContext` that calls ``func()`` whenever its count drops to 0."""

    __slots__ = ("_func",)

    def __init__(self, func):
        super().__init__()
        self._func = func

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._count -= 1
        if not self._count:
            self._func()
