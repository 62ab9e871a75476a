"""NumPy values in synced collections: converted to the nearest plain Python value.

Arrays become (nested) lists, 0-d arrays and NumPy scalars become Python scalars, each
conversion announced by a :class:`NumpyConversionWarning`.  NumPy is never imported here:
a NumPy value can only exist once some other code imported NumPy, so the checks look it
up in ``sys.modules`` and cost nothing to programs that do not use it.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

#: whether NumPy is installed (it is imported only by the code that uses it)
NUMPY = importlib.util.find_spec("numpy") is not None

NUMPY_CONVERSION_WARNING = (
    "Any numpy types provided will be transparently converted to the closest base Python equivalents."
)


class NumpyConversionWarning(UserWarning):
    """A NumPy value was converted to a plain Python value."""


def _numpy():
    return sys.modules.get("numpy")


class _ArrayTypes:
    """``type in _numpy_cache_blocklist``: whether ``type`` is a NumPy array type.

    Type resolvers must not cache arrays: a 0-d array is a scalar, others are sequences.
    """

    def __contains__(self, cls) -> bool:
        np = _numpy()
        return np is not None and issubclass(cls, np.ndarray)


_numpy_cache_blocklist = _ArrayTypes()


def _convert_numpy(data):
    """``data`` with NumPy arrays turned into lists and NumPy scalars into Python ones
    (a warning each time); anything else is returned unchanged."""
    np = _numpy()
    if np is None or not isinstance(data, (np.ndarray, np.number, np.bool_)):
        return data
    warnings.warn(NUMPY_CONVERSION_WARNING, NumpyConversionWarning, stacklevel=3)
    # tolist() gives a scalar for a 0-d array and a list for np.array([1])
    return data.tolist() if isinstance(data, np.ndarray) else data.item()


def _is_atleast_1d_numpy_array(data) -> bool:
    np = _numpy()
    return np is not None and isinstance(data, np.ndarray) and data.ndim > 0


def _is_numpy_scalar(data) -> bool:
    """A NumPy scalar or 0-d array."""
    np = _numpy()
    return np is not None and (
        isinstance(data, (np.number, np.bool_)) or (isinstance(data, np.ndarray) and data.ndim == 0)
    )


def _is_complex(data) -> bool:
    if isinstance(data, complex):
        return True
    np = _numpy()
    return np is not None and bool(np.iscomplexobj(data))
