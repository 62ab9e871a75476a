"""The safe containers, the layer above the journal: ``SafeList``, ``SafeDict`` and
``SafeSet``, in C or in pure Python as ``safe_data._impl`` chose for the journal's writer
(the C containers call the C writer directly).

Each implementation registers its types with the journal's codec when it is imported:
the journal knows them only through that registration.
"""

from .. import _impl

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True

if TYPE_CHECKING:  # type checkers read the stubs of the compiled module
    from .._core import SafeDict, SafeList, SafeSet
    from ._containers_py import watch_records
elif _impl.EXTENSION:
    from ._containers_c import SafeDict, SafeList, SafeSet, watch_records
else:
    from ._containers_py import SafeDict, SafeList, SafeSet, watch_records

__all__ = ["SafeDict", "SafeList", "SafeSet", "watch_records"]
