# Checked by mypy in tests/test_typing.py; each "# E:" line must produce exactly that error.
import safe_data
from safe_data import SafeDict, SafeList, SafeSet

orders: SafeList[int] = SafeList([1, 2], name="orders")
last: int = orders.pop()
prices: SafeDict[str, float] = SafeDict({"a": 1.0}, name="prices", deep=True)
tags: SafeSet[str] = SafeSet({"x"}, capture_caller=True)
name: str = orders.name
journal: safe_data.Journal = orders.journal
for record in journal.records("orders"):
    seq: int = record.seq
wrong: SafeList[str] = SafeList([1])  # E: List item 0 has incompatible type "int"; expected "str"
