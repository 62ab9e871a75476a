"""A record's time is CLOCK_REALTIME read during its operation, exactly.

restore(at=t) and history cuts compare the records' times with times the application
reads itself (time.time_ns(), CLOCK_REALTIME): an operation that returned before the
application read t must be in the state at t, and one that began after must not.  So
each record's time must lie between the clock read just before its operation and just
after, with no tolerance, over long enough (and with pauses of up to 3 ms between
operations) that a clock extrapolated between readings would have drifted: the C
writer's earlier TSC clock, renewed every millisecond, put 0.5-23% of the records of
such a run up to 270 ns after the clock read after their operation.
"""

import time

import safe_data


def outside(record_times, brackets):
    """How far (ns) each record time lies outside its bracket (0 inside)."""
    return [max(t0 - t, t - t1, 0) for t, (t0, t1) in zip(record_times, brackets, strict=True)]


def test_record_times_lie_between_the_clock_read_before_and_after(journal):
    items = safe_data.SafeList(range(6000), name="clock", journal=journal)
    brackets = []
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline or len(brackets) < 3000:
        before = time.time_ns()
        items.pop()
        brackets.append((before, time.time_ns()))
        if len(brackets) % 10 == 0:
            time.sleep(0.0003 * (len(brackets) % 11))  # land anywhere between two readings
    times = [r.time_ns for r in journal.records() if r.container == "clock"]
    assert len(times) == len(brackets)
    off = outside(times, brackets)
    assert max(off) == 0, f"{sum(o > 0 for o in off)} of {len(off)} records off, worst {max(off)} ns"


def test_restore_at_a_time_read_right_after_an_operation_includes_it(journal):
    """What the rule above is for, as restore() sees it (tests/test_identity.py does it on
    nested containers)."""
    items = safe_data.SafeList(range(400), name="moments", journal=journal, versioned=True)
    moments = []
    for i in range(400):
        items.pop()
        moments.append((time.time_ns(), 399 - i))
        if i % 10 == 0:
            time.sleep(0.0005)
    wrong = [(at, n) for at, n in moments if len(safe_data.restore("moments", at=at, journal=journal)) != n]
    assert wrong == []
