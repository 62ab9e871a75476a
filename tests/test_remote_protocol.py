"""The remote layout's shared rules: one reading of ``Retry-After`` for every sink, and
the segment names it builds on the journal's."""

import email.utils
import time

import pytest

from safe_data.journal import format as fmt
from safe_data.remote.protocol import BODY_SUFFIX, MAX_RETRY_AFTER, parse_retry_after, valid_segment_id


@pytest.mark.parametrize(
    "value, expected",
    [
        ("3", 3.0),
        ("  7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (str(10**9), MAX_RETRY_AFTER),  # capped: no answer parks a segment for days
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("-0.5", None),  # negative: says nothing usable (was 0 in one sink)
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("0x10", None),  # not delta-seconds
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),  # no zone: UTC, still in the past
        ("Wed, 99 Foo 2015 99:99:99 GMT", None),
        ("Mon, 1 Jan", None),
    ],
)
def test_retry_after_edge_cases(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_as_a_date_to_come():
    for zone in ("GMT", "-0000"):  # an aware date, and one without a zone (taken as UTC)
        when = email.utils.formatdate(time.time() + 60, usegmt=True).replace("GMT", zone)
        assert 55 <= parse_retry_after(when) <= 60
    far = email.utils.formatdate(time.time() + 10**7, usegmt=True)
    assert parse_retry_after(far) == MAX_RETRY_AFTER


def test_segment_names():
    name = fmt.segment_id(0x0123456789ABCDEF, 42)
    assert name == "0123456789abcdef-000042" and valid_segment_id(name)
    assert fmt.parse_segment_id(name) == (0x0123456789ABCDEF, 42)
    assert fmt.sealed_segment_id(name + fmt.SEALED_SUFFIX) == name
    assert fmt.sealed_segment_id(name + fmt.OPEN_SUFFIX) is None
    assert fmt.parse_segment_id("0123456789ABCDEF-000042") is None and not valid_segment_id(None)
    assert BODY_SUFFIX == ".seg.zst"
