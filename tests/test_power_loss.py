"""Power loss, approximately: only what reached the disk survives.

The journal lives on a real ext4 filesystem in an image file, mounted through a loop
device (needs root).  A worker journals discards and prints each value (with the time)
once the call returned; it is SIGKILLed, and at that instant the image file is copied:
the copy holds what the filesystem had written to its device, not what sat in its page
cache.  The copy is then mounted (ext4 replays its own journal, as after a power cut)
and the safe_data journal on it is read back.

* ``"fsync"`` durability: no acknowledged value is lost;
* ``"batch"``: only values acknowledged within the last ``batch_interval`` (plus the time
  one flush takes) before the kill may be lost;
* negative control: ``"process"`` durability (no fsync) loses acknowledged values here,
  so the test can tell.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import safe_data

from ._helpers import recovering

pytestmark = pytest.mark.root

IMAGE_MB = 64
BATCH_INTERVAL = 0.05

WORKER = textwrap.dedent("""
    import sys, time, safe_data
    from safe_data import SafeList
    # one 16 MiB segment for the whole run: a rotation (which seals, and so syncs, in
    # "batch" mode) would narrow the window the batch flush alone leaves open
    journal = safe_data.Journal(sys.argv[1], durability=sys.argv[2], batch_interval=float(sys.argv[3]),
                                segment_size=16 << 20)
    out = sys.stdout
    n = 0
    while True:
        items = SafeList([f"v{n + i:07d}-" + "x" * 200 for i in range(200)], name="l", journal=journal)
        while items:
            value = items.pop()
            out.write(f"ack {value[:8]} {time.monotonic():.6f}\\n")
            out.flush()
        n += 200
        time.sleep(0.01)  # ~5 MB/s: the run stays within that one segment
        if n == 400:
            out.write("running\\n")
            out.flush()
""")


def _run(*args):
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))}: {proc.stderr.strip() or proc.returncode}")


class Ext4Image:
    """An ext4 image file mounted on a loop device."""

    def __init__(self, path, mountpoint):
        self.path, self.mountpoint = path, mountpoint

    def mount(self, *options):
        self.mountpoint.mkdir(exist_ok=True)
        _run("mount", "-o", ",".join(("loop",) + options), str(self.path), str(self.mountpoint))

    def umount(self):
        if subprocess.run(["umount", str(self.mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)


@pytest.fixture
def ext4(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    if not shutil.which("mkfs.ext4") or not os.path.exists("/dev/loop-control"):
        pytest.skip("no mkfs.ext4 or no loop devices here")
    image = Ext4Image(tmp_path / "disk.img", tmp_path / "mnt")
    with open(image.path, "wb") as f:
        f.truncate(IMAGE_MB << 20)
    _run("mkfs.ext4", "-q", "-F", str(image.path))
    try:
        image.mount()
    except RuntimeError as exc:
        pytest.skip(f"cannot mount a loop device here: {exc}")
    yield image
    image.umount()


def kill_and_capture(ext4, tmp_path, durability):
    """Run the worker on the image, SIGKILL it while it writes, copy the image at once.
    Return (acks as [(value prefix, time)], kill time, the copy)."""
    journal_dir = ext4.mountpoint / "journal"
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(journal_dir), durability, str(BATCH_INTERVAL)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines, running = [], threading.Event()

    def read():  # keep reading: a full pipe would stop the worker before the kill
        for line in proc.stdout:
            lines.append(line)
            if line == "running\n":
                running.set()
        running.set()

    reader = threading.Thread(target=read)
    reader.start()
    running.wait(60)
    time.sleep(0.3)
    proc.kill()
    killed_at = time.monotonic()
    copy = tmp_path / "after-power-loss.img"
    shutil.copyfile(ext4.path, copy)  # what the filesystem had sent to its device
    proc.wait()
    reader.join()
    proc.stdout.close()
    acks = [(line.split()[1], float(line.split()[2])) for line in lines if line.startswith("ack ")]
    return acks, killed_at, copy


def surviving_values(copy, tmp_path):
    after = Ext4Image(copy, tmp_path / "mnt-after")
    after.mount()  # ext4 replays its journal, as after a power cut
    try:
        journal_dir = after.mountpoint / "journal"
        if not journal_dir.exists():
            return set()
        with recovering(), safe_data.Journal(journal_dir) as journal:  # a cut mid-write: a torn tail
            return {v[:8] for r in journal.records("l", on_error="ignore") for v in r.values}
    finally:
        after.umount()


def lost(ext4, tmp_path, durability):
    acks, killed_at, copy = kill_and_capture(ext4, tmp_path, durability)
    assert len(acks) > 400
    kept = surviving_values(copy, tmp_path)
    return [(value, killed_at - when) for value, when in acks if value not in kept], len(acks)


def test_fsync_mode_loses_no_acknowledged_value(ext4, tmp_path):
    missing, acked = lost(ext4, tmp_path, "fsync")
    assert missing == [], f"{len(missing)} of {acked} acknowledged values lost"


def test_batch_mode_loses_at_most_its_window(ext4, tmp_path):
    missing, acked = lost(ext4, tmp_path, "batch")
    window = 0.05 + 0.25  # batch_interval, plus one flush's fsync on a loaded machine
    too_old = [(v, age) for v, age in missing if age > window]
    assert too_old == [], f"lost values acknowledged up to {max(a for _, a in too_old):.3f} s before the kill"


def test_negative_control_without_fsync_acknowledged_values_are_lost(ext4, tmp_path):
    missing, acked = lost(ext4, tmp_path, "process")
    assert missing, "process mode kept everything: this setup cannot see a power loss"
