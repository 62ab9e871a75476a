# Checked by `mypy --strict` in tests/test_typing.py, never run: each "# E:" line must give
# exactly that error and every other line none.  assert_type() is an error wherever the
# type is not the one named, Any included.
import collections
from typing import Any

from typing_extensions import assert_type

import safe_data
from safe_data import SafeDict, SafeList, SafeSet
from safe_data.atomic import AtomicStore, FileVersion
from safe_data.remote.sinks.directory import DirectorySink
from safe_data.remote.sinks.http import HttpSink
from safe_data.remote.sinks.s3 import S3Sink
from safe_data.remote.uploader import Uploader
from safe_data.synced import SyncedDict

# containers: generic, every keyword, undo()
orders: SafeList[int] = SafeList([1, 2], name="orders", versioned=True, deep=True)
assert_type(orders.pop(), int)
prices: SafeDict[str, float] = SafeDict({"a": 1.0}, name="prices", deep=True, versioned=True)
tags: SafeSet[str] = SafeSet({"x"}, capture_caller=True, versioned=True)
assert_type(orders.undo(), list[safe_data.Record])
assert_type(prices.undo(2), list[safe_data.Record])
assert_type(tags.undo(n=1), list[safe_data.Record])
assert_type(orders.versioned, bool)
assert_type(tags.versioned, bool)
assert_type(orders.name, str)
wrong: SafeList[str] = SafeList([1])  # E: List item 0 has incompatible type "int"; expected "str"
SafeSet({1}, deep=True)  # E: Unexpected keyword argument "deep" for "SafeSet"

# the journal: durability is one of three names
journal = safe_data.Journal("journal", durability="fsync")
safe_data.Journal("journal", durability="fsnc")  # E: Argument "durability" to "Journal" has incompatible type "Literal['fsnc']"; expected "Literal['process', 'batch', 'fsync']"
assert_type(orders.journal, safe_data.Journal)
for record in journal.records("orders"):
    seq: int = record.seq

# getting data back
assert_type(safe_data.history("orders"), list[safe_data.Record])
assert_type(safe_data.discarded("orders"), list[Any])
assert_type(safe_data.restore("orders", at="10m"), list[Any] | dict[Any, Any] | set[Any])
assert_type(safe_data.undo(orders), list[safe_data.Record])
assert_type(safe_data.diff("orders", since="1h"), dict[str, Any])

# protecting what you did not create
assert_type(safe_data.make_safe([1, 2]), SafeList[int])
assert_type(safe_data.make_safe({"a": 1}), SafeDict[str, int])
assert_type(safe_data.make_safe({1.5}), SafeSet[float])
assert_type(safe_data.make_safe(collections.deque([1])), safe_data.SafeDeque)
assert_type(safe_data.make_safe(collections.OrderedDict(a=1)), safe_data.SafeOrderedDict)
assert_type(safe_data.make_safe(collections.defaultdict(list)), safe_data.SafeDefaultDict)
assert_type(safe_data.make_safe(bytearray(b"x")), safe_data.SafeBytearray)
assert_type(safe_data.make_safe(orders), SafeList[int])
safe_data.make_safe((1, 2))  # E: No overload variant of "make_safe" matches argument type "tuple[int, int]"
assert_type(safe_data.proxy(collections.UserDict(a=1)), safe_data.SafeMappingProxy)
assert_type(safe_data.proxy(collections.UserList([1])), safe_data.SafeSequenceProxy)
assert_type(safe_data.proxy(prices), SafeDict[str, float])
with safe_data.patched():
    pass

# the remote backup, loaded on first use: the names are the classes, not Any
assert_type(safe_data.Uploader, type[Uploader])
assert_type(safe_data.HttpSink, type[HttpSink])
assert_type(safe_data.S3Sink, type[S3Sink])
assert_type(safe_data.DirectorySink, type[DirectorySink])
uploader = safe_data.Uploader(safe_data.HttpSink("http://backup:8765", token="t"), journal)
assert_type(uploader.start(), safe_data.Uploader)
assert_type(safe_data.S3Sink("bucket", endpoint_url="http://127.0.0.1:8333"), safe_data.S3Sink)
assert_type(safe_data.DirectorySink("backup"), safe_data.DirectorySink)
assert_type(safe_data.stats(), dict[str, int])
safe_data.Uploader("http://backup:8765")  # E: Argument 1 to "Uploader" has incompatible type "str"; expected "Sink | None"

# the subpackages, loaded on first use
with safe_data.atomic.open("state.json", default={}) as store:
    assert_type(store, AtomicStore)
assert_type(safe_data.atomic.versions("state.json"), list[FileVersion])
assert_type(safe_data.synced.SyncedDict, type[SyncedDict])
