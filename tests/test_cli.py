"""The safe-data command.

Most tests run it as users and scripts do, ``python -m safe_data --journal DIR ...`` in
a real subprocess, and check its exit code and parse its ``--json`` output back; a few
use click's CliRunner where only the parsing of options is at stake.
"""

import base64
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

import safe_data as sd
from safe_data import _impl, cli
from safe_data.cli import main
from safe_data.journal import format as fmt
from safe_data.journal.repair import repair

from ._helpers import frame_extents, run_in_terminal, timeless

REQUIRED_KEYS = {
    "seq",
    "time_ns",
    "container",
    "kind",
    "op",
    "key",
    "values",
    "pid",
    "thread",
    "caller",
    "writer",
    "segment",
    "offset",
    "container_id",
}


def run_cli(journal, *args, env=None, timeout=60):
    prefix = [] if journal is None else ["--journal", str(journal)]
    return subprocess.run(
        [sys.executable, "-m", "safe_data", *prefix, *args], env=env, capture_output=True, timeout=timeout
    )


def text(result) -> str:
    return result.stdout.decode()


def json_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def invoke(journal, *args):
    """The command in-process (CliRunner), for option parsing; stdout and stderr apart."""
    return CliRunner().invoke(main, ["--journal", str(journal), *args], catch_exceptions=False)


def sealed_segments(directory) -> list[Path]:
    return sorted(Path(directory).glob("*" + fmt.SEALED_SUFFIX))


@pytest.fixture
def shop(tmp_path):
    """A closed journal: a cart list, a prefs dict and a tags set, with one discard each
    of the kinds whose JSON form is special (tuples, bytes, sets, non-str keys)."""
    path = tmp_path / "shop"
    with sd.Journal(path) as j:
        cart = sd.SafeList(
            ["apple", "bread", (1, 2), b"\x00\xff"], name="cart", journal=j, capture_caller=True
        )
        prefs = sd.SafeDict({"theme": "light", 7: "seven", (1, 2): float("nan")}, name="prefs", journal=j)
        tags = sd.SafeSet({"sale", "new", "b"}, name="tags", journal=j)
        cart.pop()  # b"\x00\xff"
        cart.pop()  # (1, 2)
        cart.remove("apple")
        prefs["theme"] = "dark"
        prefs.clear()
        tags.clear()
    return path


# --- log -------------------------------------------------------------------------------------


def test_log_json_gives_every_record_with_json_safe_values(shop):
    result = run_cli(shop, "log", "--json")
    assert result.returncode == 0, result.stderr
    lines = json_lines(result)
    assert [(r["container"], r["op"]) for r in lines] == [
        ("cart", "pop"),
        ("cart", "pop"),
        ("cart", "remove"),
        ("prefs", "set"),
        ("prefs", "clear"),
        ("tags", "clear"),
    ]
    assert all(REQUIRED_KEYS <= set(r) for r in lines)
    values = [r["values"] for r in lines]
    assert values[0] == [base64.b64encode(b"\x00\xff").decode()]  # bytes: base64
    assert values[1] == [[1, 2]]  # tuples: lists
    assert values[2] == ["apple"]
    assert values[3] == {"theme": "light"}
    assert values[4] == {"theme": "dark", "7": "seven", "(1, 2)": "nan"}  # keys: str; NaN: "nan"
    assert values[5] == ["b", "new", "sale"]  # sets: sorted lists
    first = lines[0]
    assert first["kind"] == "list" and first["key"] == 3
    assert first["segment"].startswith(first["writer"]) and len(first["writer"]) == 16
    assert first["caller"][0].endswith("test_cli.py") and first["caller"][2] == "shop"
    assert first["pid"] == lines[-1]["pid"] and isinstance(first["thread"], int)
    assert [r["seq"] for r in lines] == sorted(r["seq"] for r in lines)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    microseconds = timedelta(microseconds=first["time_ns"] // 1000)
    assert datetime.fromisoformat(first["time"]) == epoch + microseconds


def test_log_is_plain_tab_separated_text_when_piped(shop):
    result = run_cli(shop, "log", "--container", "cart")
    assert result.returncode == 0
    header, *rows = text(result).splitlines()
    assert header.split("\t") == list(cli.PLAIN_FIELDS)
    assert [row.split("\t")[4] for row in rows] == ["pop", "pop", "remove"]
    assert rows[2].split("\t")[6] == "['apple']"
    assert "\x1b[" not in text(result) and result.stderr == b""


def test_log_is_a_rich_table_on_a_terminal(shop):
    code, output = run_in_terminal([sys.executable, "-m", "safe_data", "--journal", str(shop), "log"])
    assert code == 0
    assert "\t" not in output and "─" in output  # a table, not the piped form
    for word in ("seq", "container", "discarded", "prefs", "'apple'", "{'theme': 'light'}"):
        assert word in output


def test_terminal_output_of_show_verify_and_restore(shop):
    command = [sys.executable, "-m", "safe_data", "--journal", str(shop)]
    code, output = run_in_terminal(command + ["show", "4"])
    assert code == 0 and "'theme': 'light'" in output and "address" in output
    code, output = run_in_terminal(command + ["verify"])
    assert code == 0 and "verifying" in output and "the journal is sound" in output  # a progress bar
    code, output = run_in_terminal(command + ["restore", "cart", "--discarded", "--format", "pickle"])
    assert code == cli.EXIT_USAGE and "refusing to write a pickle to a terminal" in output


def test_log_filters(shop):
    def containers(*args):
        result = invoke(shop, "log", "--json", *args)
        return [json.loads(line)["container"] for line in result.stdout.splitlines()], result.exit_code

    assert containers("--container", "prefs") == (["prefs", "prefs"], 0)
    assert containers("--container", "prefs", "--container", "tags") == (["prefs", "prefs", "tags"], 0)
    assert containers("--op", "clear") == (["prefs", "tags"], 0)
    assert containers("--op", "remove", "--op", "set") == (["cart", "prefs"], 0)
    assert containers("--limit", "2") == (["cart", "cart"], 0)
    assert containers("--since", "1h") == (containers()[0], 0)  # an age: everything is recent
    now = datetime.now(timezone.utc)
    assert containers("--until", (now - timedelta(hours=1)).isoformat()) == ([], cli.EXIT_NOT_FOUND)
    assert containers("--since", (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))[1] == 3
    assert containers("--container", "nope") == ([], cli.EXIT_NOT_FOUND)


def test_log_leaves_out_what_versioned_containers_add_unless_asked(tmp_path):
    with sd.Journal(tmp_path / "j") as j:
        v = sd.SafeList([1, 2], name="v", journal=j, versioned=True)
        v.append(3)
        v.pop(0)

    def ops(*args):
        return [
            json.loads(line)["op"]
            for line in invoke(tmp_path / "j", "log", "--json", *args).stdout.splitlines()
        ]

    assert ops() == ["pop"]
    assert ops("--all") == ["snapshot", "insert", "pop"]
    assert ops("--op", "insert") == ["insert"]


def test_usage_errors_exit_2(shop):
    result = run_cli(shop, "log", "--since", "yesterday")
    assert result.returncode == cli.EXIT_USAGE and b"neither an ISO time" in result.stderr
    for args in (
        ["log", "--op", "explode"],
        ["log", "--limit", "0"],
        ["show", "cart"],
        ["purge"],
        ["purge", "--max-bytes", "lots"],
        ["no-such-command"],
    ):
        assert invoke(shop, *args).exit_code == cli.EXIT_USAGE, args


def test_a_missing_journal_exits_3_and_creates_nothing(tmp_path):
    missing = tmp_path / "missing"
    result = run_cli(missing, "log")
    assert result.returncode == cli.EXIT_NOT_FOUND
    assert b"no journal at" in result.stderr
    for command in (["stats"], ["verify", "--repair"], ["restore", "cart"], ["purge", "--older-than", "1d"]):
        assert invoke(missing, *command).exit_code == cli.EXIT_NOT_FOUND
    assert not missing.exists()


def test_the_default_journal_honours_safe_data_home(shop):
    env = dict(os.environ, SAFE_DATA_HOME=str(shop))
    result = run_cli(None, "log", "--json", "--op", "remove", env=env)
    assert result.returncode == 0, result.stderr
    assert [r["values"] for r in json_lines(result)] == [["apple"]]


def test_log_streams_and_stops_quietly_when_the_pipe_closes(tmp_path):
    with sd.Journal(tmp_path / "j") as j:
        items = sd.SafeList(range(20_000), name="items", journal=j)
        while items:
            items.pop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "safe_data", "--journal", str(tmp_path / "j"), "log", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = json.loads(proc.stdout.readline())
    assert first["values"] == [19_999]
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=60) == cli.EXIT_BROKEN_PIPE
    assert proc.stderr.read() == b""  # no traceback
    proc.stderr.close()


# --- show ------------------------------------------------------------------------------------


def test_show_finds_a_record_by_seq_or_by_address(shop):
    records = json_lines(run_cli(shop, "log", "--json"))
    target = records[4]  # prefs clear
    by_seq = run_cli(shop, "show", str(target["seq"]), "--json")
    by_writer = invoke(shop, "show", str(target["seq"]), "--writer", target["writer"][:6], "--json")
    by_address = invoke(shop, "show", f"{target['segment']}:{target['offset']}", "--json")
    stem = target["segment"].removesuffix(fmt.SEALED_SUFFIX)
    by_stem = invoke(shop, "show", f"{stem}:{target['offset']}", "--json")
    assert by_seq.returncode == 0
    assert json.loads(by_seq.stdout) == target
    for result in (by_writer, by_address, by_stem):
        assert result.exit_code == 0 and json.loads(result.stdout) == target


def test_show_prints_a_record_in_full(tmp_path):
    with sd.Journal(tmp_path / "j") as j:
        big = sd.SafeList(range(1000), name="big", journal=j)
        big.clear()
    plain = text(run_cli(tmp_path / "j", "show", "1"))
    assert f"container: big (container {big.container_id} of its writer)" in plain
    assert "op:        clear" in plain
    assert "999]" in plain  # not abbreviated, unlike log
    assert "caller:    not recorded (capture_caller=True records it)" in plain
    assert "caller:    None" not in plain
    assert "8, 9, ...] (1000 items)" in invoke(tmp_path / "j", "log").stdout


def test_show_exit_codes(shop, tmp_path):
    assert invoke(shop, "show", "999").exit_code == cli.EXIT_NOT_FOUND
    seg = sealed_segments(shop)[0].name
    assert invoke(shop, "show", f"{seg}:65").exit_code == cli.EXIT_NOT_FOUND  # not a frame start
    assert invoke(shop, "show", "../../etc/passwd:64").exit_code == cli.EXIT_NOT_FOUND
    # two writers both have seq 1: ambiguous without --writer
    for name in ("a", "b"):
        with sd.Journal(tmp_path / "two") as j:
            sd.SafeList([name], name=name, journal=j).pop()
    result = invoke(tmp_path / "two", "show", "1")
    assert result.exit_code == cli.EXIT_USAGE and "choose one with --writer" in result.output


# --- restore ---------------------------------------------------------------------------------


def test_restore_discarded_values_as_json_and_pickle(shop, tmp_path):
    result = run_cli(shop, "restore", "cart", "--discarded")
    assert result.returncode == 0, result.stderr
    with sd.Journal(shop) as j:
        expected = sd.discarded("cart", j)
    assert (
        json.loads(result.stdout)
        == cli.jsonable(expected)
        == [base64.b64encode(b"\x00\xff").decode(), [1, 2], "apple"]
    )

    out = tmp_path / "cart.pickle"
    result = run_cli(shop, "restore", "cart", "--discarded", "--format", "pickle", "--output", str(out))
    assert result.returncode == 0 and result.stdout == b""
    assert pickle.loads(out.read_bytes()) == expected == [b"\x00\xff", (1, 2), "apple"]

    prefs = run_cli(shop, "restore", "prefs", "--discarded", "--format", "pickle")
    assert pickle.loads(prefs.stdout)[:2] == [("theme", "light"), ("theme", "dark")]


def test_restore_the_state_of_a_versioned_container(tmp_path):
    path = tmp_path / "j"
    with sd.Journal(path) as j:
        orders = sd.SafeList(["a", "b"], name="orders", journal=j, versioned=True)
        orders.append("c")
        time.sleep(0.01)
        middle = datetime.now(timezone.utc)
        time.sleep(0.01)
        orders.pop(0)
        orders.append("d")
    result = run_cli(path, "restore", "orders")
    assert result.returncode == 0, result.stderr
    with sd.Journal(path) as j:
        now, then = sd.restore("orders", journal=j), sd.restore("orders", at=middle, journal=j)
    assert json.loads(result.stdout) == now == ["b", "c", "d"]
    at_middle = run_cli(path, "restore", "orders", "--at", middle.isoformat(), "--format", "pickle")
    assert pickle.loads(at_middle.stdout) == then == ["a", "b", "c"]


def test_restore_refuses_an_incomplete_history_unless_partial(shop, tmp_path):
    out = tmp_path / "prefs.json"
    result = run_cli(shop, "restore", "prefs", "--output", str(out))
    assert result.returncode == cli.EXIT_REFUSED
    assert b"versioned=True" in result.stderr and b"--partial" in result.stderr
    assert not out.exists() and result.stdout == b""

    result = run_cli(shop, "restore", "prefs", "--partial", "--output", str(out))
    assert result.returncode == 0
    assert b"partial" in result.stderr
    with sd.Journal(shop) as j, pytest.raises(sd.IncompleteHistoryError) as info:
        sd.restore("prefs", journal=j)
    assert json.loads(out.read_text()) == cli.jsonable(info.value.partial)


def test_restore_an_unknown_container_exits_3(shop):
    result = run_cli(shop, "restore", "nope", "--discarded")
    assert result.returncode == cli.EXIT_NOT_FOUND and b"no records of container 'nope'" in result.stderr


# --- verify and repair -----------------------------------------------------------------------


def three_sealed_segments(path) -> list[Path]:
    """The sealed segments of containers a, b and c (one writer each, 50 pops each)."""
    segments: list[Path] = []
    for name in ("a", "b", "c"):
        with sd.Journal(path) as j:
            values = sd.SafeList(range(50), name=name, journal=j)
            while values:
                values.pop()
        (new,) = set(sealed_segments(path)) - set(segments)
        segments.append(new)
    return segments


def damage(segments) -> dict[str, tuple[bytes, int]]:
    """A garbage tail, a torn last frame and a bit flip; returns name -> (original bytes,
    where the first bad frame starts)."""
    originals = {}
    garbage, torn, flipped = segments
    data = garbage.read_bytes()
    garbage.write_bytes(data + b"\x99" * 100)
    originals[garbage.name] = (data + b"\x99" * 100, len(data))
    data = torn.read_bytes()
    frames = frame_offsets(data)
    torn.write_bytes(data[:-5])
    originals[torn.name] = (data[:-5], frames[-1])
    data = bytearray(flipped.read_bytes())
    frames = frame_offsets(bytes(data))
    data[frames[21] - 1] ^= 0xFF  # the last byte of frame 20
    flipped.write_bytes(bytes(data))
    originals[flipped.name] = (bytes(data), frames[20])
    return originals


def frames_of(data: bytes) -> dict[int, bytes]:
    """{offset: frame} of the frames of a compact segment that its lengths locate, each
    but for what a repair writes anew after a hole (see _helpers.timeless): its op first."""
    return {offset: timeless(data, offset) for offset in frame_offsets(data)}


def frame_offsets(data: bytes) -> list[int]:
    return [offset for offset, _ in frame_extents(data)]


def test_verify_a_sound_journal(shop):
    result = run_cli(shop, "verify")
    assert result.returncode == 0 and b"sound" in result.stdout
    assert result.stderr == b""  # no progress bar when stderr is not a terminal
    report = json.loads(run_cli(shop, "verify", "--json").stdout)
    assert report["ok"] and report["segments"] == 1 and report["problems"] == []


def test_verify_reports_damage_and_repair_cuts_it_keeping_the_originals(tmp_path):
    path = tmp_path / "j"
    originals = damage(three_sealed_segments(path))

    result = run_cli(path, "verify", "--json")
    assert result.returncode == cli.EXIT_FAILED
    report = json.loads(result.stdout)
    assert not report["ok"] and report["repaired"] == []
    assert {(p["segment"], p["offset"]) for p in report["problems"]} == {
        (name, bad) for name, (_, bad) in originals.items()
    }
    assert report["remaining"] == report["problems"]
    plain = text(run_cli(path, "verify"))
    assert "3 problems in 3 segments" in plain and "checksum mismatch" in plain
    listed = run_cli(path, "log", "--json")  # damage is reported, what is readable still listed
    assert listed.returncode == 0 and listed.stderr.count(b"safe-data: warning: journal problem") == 3
    assert len(json_lines(listed)) == 50 + 49 + 49  # the flipped frame only is skipped
    assert json.loads(run_cli(path, "stats", "--json").stdout)["problems"] == 3

    result = run_cli(path, "verify", "--repair")
    assert result.returncode == 0, result.stdout
    assert b"after the repair the journal is sound" in result.stdout
    holes = {}
    for name, (original, bad) in originals.items():
        assert (path / "damaged" / f"{name}.0.bin").read_bytes() == original  # whole, byte for byte
        repaired = frames_of((path / name).read_bytes()).values()
        kept = [f for f in repaired if f[0] != fmt.OP_HOLE]
        holes[name] = len(repaired) - len(kept)
        assert kept == [f for offset, f in frames_of(original).items() if offset != bad]
    garbage, torn, flipped = originals
    # a hole stands for each record lost (the torn last one, the flipped one); the garbage
    # after a's last frame held none
    assert holes == {garbage: 0, torn: 1, flipped: 1}
    assert run_cli(path, "verify").returncode == 0
    records = json_lines(run_cli(path, "log", "--json"))
    assert sum(r["container"] == "a" for r in records) == 50  # garbage tail: no record lost
    assert sum(r["container"] == "b" for r in records) == 49  # the torn frame is in damaged/
    assert sum(r["container"] == "c" for r in records) == 49  # and so is the flipped one


def test_an_intact_record_that_does_not_decode_is_reported_but_never_cut(tmp_path):
    path = tmp_path / "j"
    with sd.Journal(path, compact=False) as j:  # (the fields of a version-1 frame)
        items = sd.SafeList(range(3), name="items", journal=j)
        while items:
            items.pop()
    (segment,) = sealed_segments(path)
    data = bytearray(segment.read_bytes())
    middle = frame_offsets(bytes(data))[1]
    data[middle + 32] = 250  # an operation code no version knows, under a valid checksum
    length = struct.unpack_from("<I", data, middle)[0]
    struct.pack_into("<I", data, middle + 4, _impl.crc32c(bytes(data[middle + 8 : middle + length])))
    segment.write_bytes(bytes(data))

    report = json.loads(run_cli(path, "verify", "--repair", "--json").stdout)
    assert [(p["segment"], p["offset"]) for p in report["remaining"]] == [(segment.name, middle)]
    assert "undecodable record: unknown operation code 250" in report["remaining"][0]["reason"]
    assert report["repaired"] == [] and not report["ok"]
    assert segment.read_bytes() == bytes(data)  # nothing was cut
    assert [r["values"] for r in json_lines(run_cli(path, "log", "--json"))] == [[2], [0]]
    assert invoke(path, "show", "2").exit_code == cli.EXIT_FAILED


def test_repair_as_a_library_function(tmp_path):
    path = tmp_path / "j"
    first, second, third = three_sealed_segments(path)
    header = bytearray(first.read_bytes())
    header[20] ^= 0x01  # header checksum mismatch: nothing in the segment can be trusted
    first.write_bytes(bytes(header))
    second.write_bytes(second.read_bytes() + bytes(10))  # zeros after the last frame
    with sd.Journal(path) as j:
        problems = j.verify()
    assert {p.segment for p in problems} == {first.name, second.name}

    done = dict(line.split(": ", 1) for line in repair(str(path), problems))
    assert "the whole segment was moved to damaged/" in done[first.name] and not first.exists()
    assert (path / "damaged" / f"{first.name}.0.bin").read_bytes() == bytes(header)
    assert done[second.name].startswith("cut 10 bytes")
    assert repair(str(path), problems) == []  # each segment is checked again: nothing left to do
    with sd.Journal(path) as j:
        assert j.verify() == []
        assert {r.container for r in j.records()} == {"b", "c"}


LIVE_WRITER = """
import sys, safe_data
journal = safe_data.Journal(sys.argv[1])
live = safe_data.SafeList(range(3), name="live", journal=journal)
live.pop()
print("ready", flush=True)
sys.stdin.readline()
live.pop()
live.pop()
journal.close()
print("done", flush=True)
"""


def test_repair_seals_a_dead_writers_segment_and_never_touches_a_live_one(tmp_path):
    path = tmp_path / "j"
    dead, sealed, _ = three_sealed_segments(path)
    live = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout.readline().strip() == "ready"
        (live_open,) = path.glob("*" + fmt.OPEN_SUFFIX)
        before = live_open.read_bytes()
        # a dead writer's .open segment (its frames, a lost page, then data) and a garbage tail
        data = dead.read_bytes()
        dead_open = dead.with_suffix(fmt.OPEN_SUFFIX)
        dead_open.write_bytes(data + bytes(4096) + b"orphaned bytes" + bytes(8192))
        dead.unlink()
        sealed.write_bytes(sealed.read_bytes() + b"\x01\x02\x03")

        report = json.loads(run_cli(path, "verify", "--repair", "--json").stdout)
        assert {p["segment"] for p in report["problems"]} == {dead_open.name, sealed.name}
        assert report["ok"] and report["remaining"] == [] and len(report["repaired"]) == 2
        assert live_open.read_bytes() == before  # the live writer's segment is untouched
        assert not dead_open.exists() and dead.exists()  # recovered and sealed
        assert run_cli(path, "verify").returncode == 0

        live.stdin.write("go\n")
        live.stdin.flush()
        assert live.stdout.readline().strip() == "done"
    finally:
        live.stdin.close()
        live.wait(timeout=60)
        live.stdout.close()
    values = [r["values"] for r in json_lines(run_cli(path, "log", "--json", "--container", "live"))]
    assert values == [[2], [1], [0]]


# --- stats -----------------------------------------------------------------------------------


def test_stats(shop):
    result = run_cli(shop, "stats", "--json")
    assert result.returncode == 0
    figures = json.loads(result.stdout)
    assert figures["records"] == 6 and figures["problems"] == 0
    assert figures["segments"] == {"sealed": 1, "open": 0, "live": 0}
    assert {name: c["records"] for name, c in figures["containers"].items()} == {
        "cart": 3,
        "prefs": 2,
        "tags": 1,
    }
    assert sum(c["bytes"] for c in figures["containers"].values()) == figures["record_bytes"]
    cart = figures["containers"]["cart"]
    assert cart["oldest_ns"] <= cart["newest_ns"] and cart["oldest"] <= cart["newest"]
    assert figures["disk_bytes"] >= figures["record_bytes"]
    pending = figures["pending_upload"]
    assert pending["segments"] == 1 and "not yet acknowledged" in pending["note"]
    plain = text(run_cli(shop, "stats"))
    assert "pending upload" in plain and "6 (" in plain and "cart\t3\t" in plain


# --- purge -----------------------------------------------------------------------------------


@pytest.fixture
def three_ages(tmp_path):
    """Sealed segments written one after the other: old (container "old"), then mixed
    ("old" and "keep"), then new ("keep"); returns (path, {label: segment}, boundary time)."""
    path = tmp_path / "j"
    segments = {}
    for label, names in (("old", ["old"]), ("mixed", ["old", "keep"]), ("new", ["keep"])):
        before = set(sealed_segments(path)) if path.exists() else set()
        with sd.Journal(path) as j:
            for name in names:
                sd.SafeList(range(100), name=name, journal=j).clear()
        (segments[label],) = set(sealed_segments(path)) - before
        if label == "old":
            time.sleep(0.01)
            boundary = datetime.now(timezone.utc)
            time.sleep(0.01)
    return path, segments, boundary


def purged(path, *args):
    result = run_cli(path, "purge", *args, "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def backed_up(tmp_path):
    """14 sealed segments a real uploader shipped to a directory (kept locally, marked as
    acknowledged: keep_for), then 1 sealed segment never sent; returns (path, unsent)."""
    path = tmp_path / "j"
    with sd.Journal(path) as j:
        for n in range(14):
            sd.SafeList(range(10), name=f"shipped{n}", journal=j).clear()
            j.seal()
        with sd.Uploader(sd.DirectorySink(tmp_path / "backup"), j, keep_for=3600) as uploader:
            uploader.flush(timeout=60)
        sd.SafeList(range(10), name="unsent", journal=j).clear()
    (unsent,) = set(sealed_segments(path)) - {
        path / (m + fmt.SEALED_SUFFIX) for m in os.listdir(path / "uploaded")
    }
    return path, unsent


def test_purge_deletes_what_was_backed_up_and_keeps_the_rest(backed_up):
    path, unsent = backed_up
    code, result = purged(path, "--older-than", "2999-01-01", "--dry-run")
    assert code == 0 and result["action"] == "would delete" and len(result["segments"]) == 14
    assert [s["segment"] for s in result["kept"]] == [unsent.name] and len(sealed_segments(path)) == 15

    plain = run_cli(path, "purge", "--older-than", "2999-01-01")
    assert plain.returncode == cli.EXIT_PARTIAL == 5
    assert sealed_segments(path) == [unsent]  # the 14 went, the unsent one stayed
    out, err = text(plain), plain.stderr.decode()
    assert "# deleted 14 segments" in out and "# kept 1 segment" in out and unsent.name in out
    assert err.count("\n") == 1 and "kept 1 segment not yet acknowledged" in err and "--force" in err
    assert "Traceback" not in err
    assert run_cli(path, "verify").returncode == 0  # the deletions are in the ledger

    code, result = purged(path, "--older-than", "2999-01-01")
    assert code == 5 and result["segments"] == [] and result["kept"][0]["segment"] == unsent.name
    code, result = purged(path, "--older-than", "2999-01-01", "--force")
    assert code == 0 and [s["segment"] for s in result["segments"]] == [unsent.name]
    assert result["kept"] == [] and sealed_segments(path) == []


def test_purge_down_to_a_size_takes_the_next_backed_up_segment_for_a_kept_one(tmp_path):
    path = tmp_path / "j"
    with sd.Journal(path) as j:
        for name in ("first", "second", "third"):
            sd.SafeList(range(10), name=name, journal=j).clear()
            j.seal()
    first, second, third = sealed_segments(path)
    (path / "uploaded").mkdir()
    for segment in (second, third):
        (path / "uploaded" / segment.name[: -len(fmt.SEALED_SUFFIX)]).touch()
    size = first.stat().st_blocks * 512
    code, result = purged(path, "--max-bytes", str(2 * size))  # one segment must go
    assert code == 5 and [s["segment"] for s in result["kept"]] == [first.name]
    assert [s["segment"] for s in result["segments"]] == [second.name]
    assert sealed_segments(path) == [first, third]


def test_journal_purge_keeps_what_no_backup_acknowledged(backed_up):
    path, unsent = backed_up
    with sd.Journal(path) as journal:
        with pytest.raises(ValueError, match="say what to purge"):
            journal.purge()
        result = journal.purge(older_than="2999-01-01", dry_run=True)
        assert (len(result.deleted), [s.path for s in result.kept]) == (14, [str(unsent)])
        assert len(sealed_segments(path)) == 15
        result = journal.purge(older_than="2999-01-01", keep_unsent=True)
        assert len(result.deleted) == 14 and [s.name for s in result.kept] == [unsent.name]
        assert sealed_segments(path) == [unsent] and journal.verify() == []
        result = journal.purge(older_than="2999-01-01", keep_unsent=False)
        assert [s.name for s in result.deleted] == [unsent.name] and result.kept == []
    assert sealed_segments(path) == []
    with sd.Journal(path, readonly=True) as journal, pytest.raises(sd.JournalReadOnlyError):
        journal.purge(max_bytes=0)


def test_purge_by_container_age_and_size(three_ages):
    path, segments, boundary = three_ages
    code, plan = purged(path, "--container", "old", "--force")
    assert code == 0 and plan["action"] == "deleted"
    assert not segments["old"].exists() and segments["mixed"].exists()

    code, plan = purged(path, "--older-than", boundary.isoformat(), "--force")
    assert (code, plan["segments"]) == (0, [])  # nothing left that old: not an error
    code, plan = purged(path, "--older-than", "1d", "--force")
    assert (code, plan["segments"]) == (0, [])

    total = sum(s.stat().st_blocks * 512 for s in sealed_segments(path))
    code, plan = purged(path, "--max-bytes", str(total - 1), "--force")  # the oldest goes first
    assert code == 0 and [s["segment"] for s in plan["segments"]] == [segments["mixed"].name]
    assert sealed_segments(path) == [segments["new"]]
    assert {r["container"] for r in json_lines(run_cli(path, "log", "--json"))} == {"keep"}


def test_purge_never_deletes_open_segments(three_ages):
    path, segments, _ = three_ages
    live = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout.readline().strip() == "ready"
        code, plan = purged(path, "--older-than", "2999-01-01", "--force")
        assert code == 0 and len(plan["segments"]) == 3
        assert sealed_segments(path) == [] and len(list(path.glob("*" + fmt.OPEN_SUFFIX))) == 1
    finally:
        live.stdin.close()
        live.wait(timeout=60)
        live.stdout.close()


# --- the pieces ------------------------------------------------------------------------------


def test_jsonable():
    cyclic = [1]
    cyclic.append(cyclic)
    assert cli.jsonable({1: (2, b"ab"), None: {3, 1, 2}, (1, 2): frozenset({"b", "a"}), False: 0}) == {
        "1": [2, "YWI="],
        "null": [1, 2, 3],
        "(1, 2)": ["a", "b"],
        "false": 0,
    }
    assert cli.jsonable([float("inf"), float("-inf"), 1.5, True, None]) == ["inf", "-inf", 1.5, True, None]
    assert sorted(cli.jsonable({1, "a"}), key=str) == [1, "a"]  # unsortable: iteration order
    assert cli.jsonable(cyclic) == [1, "..."]
    assert cli.jsonable(slice(1, 5, None)) == "slice(1, 5, None)"
    assert cli.jsonable(sd.UnverifiedPickle(b"x")).startswith("<UnverifiedPickle")
    json.dumps(cli.jsonable({"x": [cyclic, {2.5j}]}), allow_nan=False)


@pytest.mark.parametrize(
    "value",
    [
        [1, "a", None, True, 2.5],
        {"k": (1, (2, 3))},
        {1: "int key", None: 0, 2.5: False},
        [{3, 1, 2}, frozenset({"z", "y"})],
        [b"\x00", bytearray(b"ab")],
        [slice(0, 2, 1), 3j],
        {(1, 2): "tuple key"},
        [float("nan")],
        [{1, "a"}],
        [[1, [2, {"x": {4}}]]],
    ],
)
def test_dumps_takes_a_shortcut_with_the_same_result(value):
    assert cli.dumps(value) == json.dumps(cli.jsonable(value), separators=(",", ":"))
    assert cli.dumps(value, indent=2) == json.dumps(cli.jsonable(value), indent=2)


def test_time_and_size_parameters():
    def parse(value):
        return cli.TIME.convert(value, None, None)

    now, utc = datetime.now(timezone.utc), timezone.utc
    assert abs(parse("10m") - (now - timedelta(minutes=10))) < timedelta(seconds=5)
    assert abs(parse("1.5h") - (now - timedelta(minutes=90))) < timedelta(seconds=5)
    assert parse("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc)  # naive: UTC
    assert parse("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc)
    assert parse("2026-01-02T05:04:05+02:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc)
    assert parse("2026-01-02") == datetime(2026, 1, 2, tzinfo=utc)
    assert [cli.SIZE.convert(v, None, None) for v in ("100", "64k", "500M", "2GiB", "1.5kb")] == [
        100,
        64 << 10,
        500 << 20,
        2 << 30,
        1536,
    ]


# --- demo and the entry points ---------------------------------------------------------------


def test_demo_walks_through_keeps_its_journal_and_its_next_commands_work(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))  # where the demo makes its journal
    result = run_cli(None, "demo", env=env)
    out = text(result)
    assert result.returncode == 0, out + result.stderr.decode()
    assert "before:  cart = ['apple', 'bread', 'milk', 'eggs']" in out
    assert "after:   cart = ['bread', 'milk']" in out
    assert "undo(cart, 2)              -> cart = ['apple', 'bread', 'milk', 'eggs']" in out
    assert "-> {'theme': 'light', 'lang': 'en'}" in out and "the same as before" in out
    assert "1000 of 1000 popped values are in the journal" in out and "0 problems" in out
    (journal,) = tmp_path.glob("safe-data-demo-*")
    assert f"The journal is kept at {journal}. Try:" in out
    commands = [line.split() for line in out.splitlines() if line.startswith("   safe-data ")]
    assert len(commands) == 4
    for command in commands:  # as the reader would type them
        proc = subprocess.run([sys.executable, "-m", "safe_data", *command[1:]], capture_output=True)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
    cart = json.loads(run_cli(journal, "restore", "cart", "--discarded").stdout)
    assert cart == ["eggs", "apple"]


def test_demo_json_and_a_journal_given_after_the_command(tmp_path):
    result = run_cli(None, "demo", "--journal", str(tmp_path / "j"), "--json")
    shown = json.loads(result.stdout)
    assert result.returncode == 0 and shown["ok"] and shown["journal"] == str(tmp_path / "j")
    assert shown["restored"] == shown["before"] and shown["survived"] == 1000
    assert [(r["container"], r["op"]) for r in shown["discarded"]] == [
        ("cart", "pop"),
        ("cart", "remove"),
        ("prefs", "set"),
        ("prefs", "del"),
    ]
    assert shown["implementation"] == ("C extension" if sd.EXTENSION else "pure Python")


def test_python_dash_m_and_version(tmp_path):
    env = dict(os.environ, SAFE_DATA_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "safe_data", "--version"], env=env, capture_output=True, text=True, check=True
    )
    implementation = "C extension" if sd.EXTENSION else "pure Python"
    assert out.stdout == (
        f"safe-data, version {sd.__version__} ({implementation}, Python {sys.version.split()[0]})\n"
    )


def test_help_texts_are_plain_text():
    """No reStructuredText (or Markdown) markup in what --help prints."""
    for args in [[]] + [[name] for name in main.commands]:
        shown = CliRunner().invoke(main, [*args, "--help"]).output
        assert shown.startswith("Usage: ")
        assert not re.search(r"`|:[a-z]+:|\*\*|^\s*\.\. ", shown, re.M), (args, shown)


def test_the_journal_can_follow_the_command(shop, tmp_path):
    for args in (
        ["log", "--json"],
        ["show", "1", "--json"],
        ["stats", "--json"],
        ["verify"],
        ["restore", "cart", "--discarded"],
        ["purge", "--older-than", "1d", "--json"],
        ["file-versions", str(tmp_path / "nothing")],
    ):
        before = run_cli(shop, *args)
        after = run_cli(None, *args, "--journal", str(shop))
        assert (after.returncode, after.stdout, after.stderr) == (
            before.returncode,
            before.stdout,
            before.stderr,
        ), args
    assert run_cli(shop, "log", "--journal", str(shop)).returncode == 0  # the same twice: fine
    twice = run_cli(shop, "log", "--journal", str(tmp_path / "other"))
    assert twice.returncode == 2 and b"given before the command" in twice.stderr
