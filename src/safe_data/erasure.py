"""Erasure on request: :func:`forget` takes records out of the journal for good.

The journal layer does the work (:mod:`.journal.forget`: sealed segments rewritten with a
hole where each run of chosen records was; :mod:`.journal.forgotten`: the log of what was
forgotten); this module says which records, the way history() names containers.
"""

from __future__ import annotations

import asyncio
import getpass

from .containers import _support
from .errors import JournalReadOnlyError
from .journal import encryption
from .journal.forget import Choice, Forgotten
from .journal.forget import forget as _forget
from .journal.journal import to_ns

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .journal.reader import Record


def forget(
    container: Any = None,
    *,
    name: str | None = None,
    identity: tuple[int, int] | None = None,
    before=None,
    after=None,
    journal=None,
    predicate: Callable[[Record], bool] | None = None,
    backups=(),
    recipients: list[str] | None = None,
    key_store=None,
    dry_run: bool = False,
) -> Forgotten:
    """Remove records from the journal for good: their values cannot be read back.

    Parameters
    ----------
    container : SafeList, SafeDict, SafeSet, str or callable, optional
        A safe container: its own records, by identity (as :func:`history` finds them),
        from its journal.  A str: as ``name``.  A callable: as ``predicate``.
    name : str, optional
        The records of every container of that name, and of those nested in them
        (``orders[3]["items"]`` is in ``orders``).
    identity : (int, int), optional
        A container's ``(writer, container_id)`` (as records carry it): its records,
        whatever its name; what ``container`` gives for a container of this process.
    before, after : datetime, int, or str, optional
        Only records older than ``before`` / at least as recent as ``after`` (as the
        ``safe-data`` command takes times: ISO, or an age such as ``"30d"``).
    journal : Journal, optional
        Default: the container's, else the default journal.
    predicate : callable, optional
        Called with each :class:`Record` the other criteria chose: forget it if true.
    backups : list of sinks, optional
        Backups to forget in too (:class:`HttpSink` with an admin token,
        :class:`DirectorySink`, :class:`S3Sink`): each stored segment holding chosen
        records, shipped and perhaps gone from here, is replaced by its rewrite
        (docs/remote.md, "Forgetting").  Encrypted copies are decrypted with
        ``SAFE_DATA_IDENTITY_FILE`` and encrypted again to ``recipients``.
    recipients : list of str, optional
        age recipients (``age1...``) for rewrites of encrypted backed-up segments.
    key_store : KeyStore or path, optional
        The key store the backups' segments were shipped with (crypto-shredding,
        docs/security.md): their data keys are unwrapped with ``SAFE_DATA_IDENTITY_FILE``,
        each replacement gets a new one (wrapped to ``recipients``), and the replaced
        version's key is destroyed, so that no copy of it anywhere can be read again.
        Needs ``backups`` and ``recipients``; closed when done.
    dry_run : bool
        Change nothing; the result says what would be forgotten.

    Returns
    -------
    Forgotten
        ``id`` (in the journal's forgotten log and in the segments), ``segments``
        ({segment id: records}), ``records`` (their sum), ``unsealed`` (segments other
        running processes are still writing that hold chosen records: not forgotten).

    Notes
    -----
    The backups are asked from this thread, with :func:`asyncio.run`: call it outside a
    running event loop.  This process's segment being written is sealed first, so every record it wrote is
    in a sealed segment.  Each sealed segment holding chosen records is rewritten
    atomically with a hole, marked forgotten, in their place; ``verify`` reports them as
    forgotten, not as damage (docs/security.md, "Forgetting").
    """
    if callable(container):  # (no safe container is callable)
        container, predicate = None, container
    if isinstance(container, str):
        container, name = None, container
    asked: dict = {} if identity is None else {"identity": list(identity)}
    if container is not None:
        journal = container.journal
        identity = (journal._manager.writer_id, container.container_id)
        asked.update(container=container.name, identity=list(identity))
    journal = _support.resolve_journal(journal)
    if name is None and identity is None and predicate is None and before is None and after is None:
        raise ValueError("say what to forget: a container, name=, before=, after= and/or predicate=")
    before_ns, after_ns = to_ns(before), to_ns(after)
    asked.update(name=name, before_ns=before_ns, after_ns=after_ns)
    if predicate is not None:
        asked["predicate"] = getattr(predicate, "__qualname__", type(predicate).__name__)
    asked["user"] = getpass.getuser()
    choice = Choice(
        names=() if name is None else (name,),
        identity=identity,
        after_ns=after_ns,
        before_ns=before_ns,
        predicate=predicate,
        asked={k: v for k, v in asked.items() if v is not None},
    )
    if key_store is not None and (not backups or recipients is None):
        raise ValueError(
            "key_store destroys the data keys of the backups' segments forget replaces: "
            "give backups= and the recipients= to wrap their replacements' keys to"
        )
    if key_store is not None:
        from .remote.keystores import key_store_of

        key_store = key_store_of(key_store)
    if journal.readonly and not dry_run:
        raise JournalReadOnlyError(
            f"the journal {journal.path} was opened with readonly=True: "
            f"it cannot forget (dry_run=True only lists)"
        )
    if not journal.readonly and not journal.closed:
        journal.seal()  # this process's records are in sealed segments: all can go
    at_rest = getattr(journal._manager, "encrypt_to", None)
    result = _forget(journal.path, choice, journal._key, recipients=at_rest, dry_run=dry_run)
    if result.segments and not dry_run:
        from .remote import _prepared

        # the bodies kept for the uploader of the segments as they were would still
        # decrypt to what was forgotten
        _prepared.drop_other_versions(journal.path, result.segments)
    if backups:
        parsed = None if recipients is None else encryption.parse_recipients(recipients)
        done = asyncio.run(_in_backups(backups, journal, choice, result.id, parsed, key_store, dry_run))
        result = result._replace(backups=done)
    return result


async def _in_backups(backups, journal, choice, forget_id, recipients, key_store, dry_run) -> dict:
    try:
        return await _each_backup(backups, journal, choice, forget_id, recipients, key_store, dry_run)
    finally:
        if key_store is not None:
            await key_store.close()


async def _each_backup(backups, journal, choice, forget_id, recipients, key_store, dry_run) -> dict:
    from .remote.forgetting import forget_in_backup

    done = {}
    identities = encryption.reader_identities()
    for sink in backups:
        try:
            done[repr(sink)] = await forget_in_backup(
                sink,
                journal.path,
                choice,
                journal._key,
                forget_id,
                identities=identities,
                recipients=recipients,
                key_store=key_store,
                dry_run=dry_run,
            )
        finally:
            close = getattr(sink, "close", None)
            if close is not None:
                await close()
    return done
