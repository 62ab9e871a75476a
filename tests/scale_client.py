"""One client host of tests/test_scale_out.py, run as its own process:

    python tests/scale_client.py JOURNAL_DIR NAME RECORDS URL[,URL...] FLUSH_TIMEOUT
    (the token in $SAFE_DATA_TOKEN)

It pops RECORDS strings ``"NAME:i"`` (i = 0, 1, ...) off a SafeList journaled in its own
JOURNAL_DIR, a few at a time, while an Uploader ships the sealed segments to the backup
servers through one HttpSink over every URL (fail-over).  It prints ``started`` once
popping began, then, after flushing, one JSON object: the records written, what the
uploader counted and the journal's ledger (the segments it let go, each with its seqs,
because a server acknowledged them), and the segment files left in JOURNAL_DIR.
"""

from __future__ import annotations

import json
import os
import sys
import time

from safe_data import SafeList
from safe_data.journal import ledger
from safe_data.journal.journal import Journal
from safe_data.remote.sinks.http import HttpSink
from safe_data.remote.uploader import Uploader

BATCH = 25  # records popped between pauses of PAUSE s: 3000 records take 6 s at least
PAUSE = 0.05
SEGMENT_SIZE = 16384  # small segments: many travel, some while a server is being killed


def main(directory: str, name: str, records: int, urls: str, flush_timeout: float) -> None:
    journal = Journal(directory, segment_size=SEGMENT_SIZE)
    sink = HttpSink(urls.split(","), os.environ["SAFE_DATA_TOKEN"], timeout=20, connect_timeout=5)
    uploader = Uploader(sink, journal, seal_every=0.2, backoff=(0.05, 1.0)).start()
    items = SafeList((f"{name}:{i}" for i in reversed(range(records))), name=name, journal=journal)
    print("started", flush=True)
    while items:
        for _ in range(min(BATCH, len(items))):
            items.pop()
        time.sleep(PAUSE)
    try:
        uploader.flush(timeout=flush_timeout)
        flushed = True
    except TimeoutError:
        flushed = False
    counters = uploader.counters()
    uploader.close(timeout=0.1 if not flushed else 10)
    journal.close()
    departed, problems = ledger.read(directory)
    result = {
        "name": name,
        "written": records,
        "flushed": flushed,
        "counters": counters,
        "ledger": [[d.segment, d.first, d.last, d.why] for d in departed.values()],
        "ledger_problems": [str(p) for p in problems],
        "left": sorted(f for f in os.listdir(directory) if f.endswith(".seg")),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
