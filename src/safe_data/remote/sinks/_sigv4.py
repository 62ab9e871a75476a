"""AWS Signature V4, as S3 wants it: ~60 lines of ``hmac``/``hashlib``, checked against
AWS's published test vector in the test suite (tests/test_s3.py)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["sign_v4", "uri_encode"]


def uri_encode(s: str, *, keep_slash: bool) -> str:
    return quote(s, safe="-_.~/" if keep_slash else "-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "s3",
    amz_date: str,
) -> str:
    """The ``Authorization`` header of an AWS Signature V4 request.

    *path* is the already URI-encoded path (S3 encodes it once), *query* the decoded
    query parameters, *headers* every header to sign (they must include ``host`` and
    ``x-amz-date``; S3 also wants ``x-amz-content-sha256``), *amz_date* the
    ``YYYYMMDDTHHMMSSZ`` time also sent as ``x-amz-date``.
    """
    canonical_query = "&".join(
        f"{uri_encode(k, keep_slash=False)}={uri_encode(v, keep_slash=False)}"
        for k, v in sorted(query.items())
    )
    norm = {k.lower().strip(): " ".join(str(v).split()) for k, v in headers.items()}
    signed = ";".join(sorted(norm))
    canonical_headers = "".join(f"{k}:{norm[k]}\n" for k in sorted(norm))
    canonical_request = "\n".join(
        [method.upper(), path or "/", canonical_query, canonical_headers, signed, payload_sha256]
    )
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    key = _hmac(key, "aws4_request")
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
