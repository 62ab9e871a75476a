"""Group 20: what a per-segment data key costs the uploader (docs/remote.md, *Per-segment
data keys*).

Each round age-encrypts a zstd body of 64 KiB or 1 MiB (of random bytes, which zstd
stores as they are) and hashes the ciphertext, as the uploader does before it sends a
segment: to the long-term recipient (``recipient``), or with a key store to a fresh data
key, whose secret is then wrapped to the recipient (``data key``: ``data_keys.seal``).
``x_recipient``: the data key's time per body over the recipient's, in the same run.
CPU only: the fastest round.
"""

import hashlib
import random

import pytest
from benchutil import run

pytest.importorskip("pyrage")
zstandard = pytest.importorskip("zstandard")

from safe_data.journal import encryption  # noqa: E402
from safe_data.journal.format import ZSTD_LEVEL  # noqa: E402
from safe_data.remote.keystores import data_keys  # noqa: E402

SIZES = {"64 KiB": 64 << 10, "1 MiB": 1 << 20}
BODIES = 20  # per round


def to_recipient(body, recipients):
    ciphertext = encryption.encrypt(body, recipients)
    return ciphertext, hashlib.sha256(ciphertext).hexdigest()


def to_data_key(body, recipients):
    return data_keys.seal(body, recipients)


@pytest.mark.parametrize("variant", ["recipient", "data key"])
@pytest.mark.parametrize("size", list(SIZES))
def test_encrypting_a_body(benchmark, size, variant):
    raw = random.Random(0).randbytes(SIZES[size])
    body = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(raw)
    recipients = encryption.parse_recipients([encryption.new_identity()[1]])
    seal = to_recipient if variant == "recipient" else to_data_key

    def encrypt_all():
        for _ in range(BODIES):
            seal(body, recipients)

    run(benchmark, encrypt_all, group=f"20 data key: {size} body", variant=variant, ops=BODIES, rounds=15)
