"""Where an S3 client finds its keys and region: the way AWS's own tools do (docs/remote.md).

Keys, first found wins:

1. the ``access_key``/``secret_key``/``session_token`` arguments, or a ``credentials``
   object (anything with botocore's ``get_frozen_credentials()``, e.g.
   ``boto3.Session().get_credentials()``);
2. with botocore installed (the ``s3`` extra; imported only here, and only when needed):
   botocore's credential resolver, the chain every AWS SDK and the AWS CLI walk:
   environment, shared ``credentials``/``config`` files and their profiles
   (``credential_process``, SSO, assume-role), web identity (EKS IRSA), the container
   and the instance metadata endpoints;
3. without botocore: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
   ``AWS_SESSION_TOKEN``.

Temporary keys are botocore's ``RefreshableCredentials``: asked before every request,
they renew themselves ahead of expiry (botocore starts 15 minutes before; asking can
then block, so it runs in a worker thread).  When the store still refuses the keys
(they expired early, were revoked, or an ``ExpiredToken`` answer came),
:meth:`CredentialSource.renew` resolves the chain again, once for all the requests
that were refused together, and the request is sent once more.

Region: the ``region`` argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's
``region`` (botocore), else ``us-east-1``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from . import TransientError

__all__ = ["Keys", "CredentialSource", "AwsSettings"]

DEFAULT_REGION = "us-east-1"
# A refused request renews the keys at most this often: a store that keeps refusing
# (a policy denies the bucket) must not make every request re-run the resolver chain.
RENEW_INTERVAL = 5.0

_NO_KEYS = (
    "S3 needs credentials: pass access_key and secret_key, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)


@dataclasses.dataclass(frozen=True)
class Keys:
    """One set of keys a request is signed with."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never shows the secret
        return f"Keys(access_key={self.access_key!r})"


def _frozen(provider: Any) -> Keys:
    """The current keys of a botocore-like credentials object (may block to refresh)."""
    frozen = provider.get_frozen_credentials()
    return Keys(frozen.access_key, frozen.secret_key, frozen.token or None)


class CredentialSource:
    """The keys of an S3 client: fixed ones, or a botocore-like provider that renews them.

    *supply*: :class:`Keys`, or an object with ``get_frozen_credentials()`` (botocore's
    ``Credentials``: asked before each request if it is refreshable, read once if not);
    *resolve*: returns a new one (the resolver chain run again) for :meth:`renew`.
    """

    def __init__(self, supply: Any, *, resolve: Callable[[], Any] | None = None) -> None:
        self._resolve = resolve
        self._lock = threading.Lock()  # renewals run in worker threads, whatever the loop
        self._renewed_at = float("-inf")
        self._supply = self._supply_of(supply)

    @staticmethod
    def _supply_of(supply: Any) -> Any:
        """Fixed :class:`Keys`, or a refreshable provider: one attribute, swapped whole."""
        if isinstance(supply, Keys) or callable(getattr(supply, "refresh_needed", None)):
            return supply
        return _frozen(supply)

    def __repr__(self) -> str:
        fixed = isinstance(self._supply, Keys)
        return f"CredentialSource({'fixed keys' if fixed else type(self._supply).__name__})"

    async def keys(self) -> Keys:
        """The keys to sign the next request with (renewed first if they expire soon)."""
        if isinstance(self._supply, Keys):
            return self._supply
        return await self._in_thread(_frozen, self._supply)

    async def renew(self, refused: Keys) -> Keys | None:
        """Keys other than *refused* (which the store just refused), or None if the source
        has none: the resolver chain runs again, unless another request just did that."""
        if isinstance(self._supply, Keys) and self._resolve is None:
            return None
        return await self._in_thread(self._renew, refused)

    async def _in_thread(self, fn, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except Exception as exc:  # botocore's errors: a failing credential_process, IMDS...
            raise TransientError(f"cannot get S3 credentials: {type(exc).__name__}: {exc}") from exc

    def _renew(self, refused: Keys) -> Keys | None:
        with self._lock:
            current = self._current()
            if current != refused:  # renewed meanwhile (by botocore or another request)
                return current
            if self._resolve is None or time.monotonic() - self._renewed_at < RENEW_INTERVAL:
                return None
            self._renewed_at = time.monotonic()
            supply = self._resolve()
            if supply is None:
                return None
            self._supply = self._supply_of(supply)
            current = self._current()
            return current if current != refused else None

    def _current(self) -> Keys:
        return self._supply if isinstance(self._supply, Keys) else _frozen(self._supply)


class AwsSettings:
    """Region and credentials for one profile (None: ``AWS_PROFILE`` or ``default``).

    botocore is imported, and its session made, only if something is left to look up.
    """

    def __init__(self, profile: str | None = None) -> None:
        self.profile = profile

    @functools.cached_property
    def _session(self):
        """botocore's session, or None without botocore (an error if a profile was named)."""
        try:
            import botocore.session
        except ImportError:
            if self.profile:
                raise ValueError(
                    f"the AWS profile {self.profile!r} needs botocore: pip install 'safe_data[s3]'"
                ) from None
            return None
        from botocore.exceptions import BotoCoreError

        session = botocore.session.Session(profile=self.profile)
        try:
            session.get_scoped_config()  # a missing profile or an unreadable file: now
        except BotoCoreError as exc:
            raise ValueError(f"AWS configuration: {exc}") from None
        return session

    def region(self, region: str | None = None) -> str:
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region and self._session is not None:
            region = self._session.get_config_variable("region")
        return region or DEFAULT_REGION

    def credentials(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        credentials: Any = None,
    ) -> CredentialSource:
        """The source of keys (ValueError naming what to set when there is none)."""
        if access_key is not None or secret_key is not None:
            if credentials is not None:
                raise ValueError("give access_key/secret_key or credentials, not both")
            if not access_key or not secret_key:
                raise ValueError("access_key and secret_key go together")
            return CredentialSource(Keys(access_key, secret_key, session_token or None))
        if credentials is not None:
            if not callable(getattr(credentials, "get_frozen_credentials", None)):
                raise ValueError(
                    "credentials must have get_frozen_credentials() (botocore's "
                    f"Credentials), not {type(credentials).__name__}"
                )
            return CredentialSource(credentials)
        if self._session is None:
            environ = os.environ
            if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
                return CredentialSource(
                    Keys(
                        environ["AWS_ACCESS_KEY_ID"],
                        environ["AWS_SECRET_ACCESS_KEY"],
                        environ.get("AWS_SESSION_TOKEN") or None,
                    )
                )
            raise ValueError(
                f"{_NO_KEYS}, or install botocore (pip install 'safe_data[s3]') for "
                "profiles, web identity, container and instance credentials"
            )
        provider = self._resolve()
        if provider is None:
            where = f"profile {self.profile!r}" if self.profile else "the environment"
            raise ValueError(
                f"{_NO_KEYS}, or configure {where} as for the AWS CLI (no "
                "credentials were found in any of the places AWS's tools look)"
            )
        return CredentialSource(provider, resolve=self._resolve)

    def _resolve(self):
        """botocore's resolver chain, run anew (a new session: nothing cached)."""
        import botocore.session
        from botocore.exceptions import BotoCoreError

        try:
            return botocore.session.Session(profile=self.profile).get_credentials()
        except BotoCoreError as exc:
            raise ValueError(f"S3 credentials: {exc}") from None
