"""Journal the rows a SQLAlchemy session deletes or overwrites, and put them back.

:func:`protect` a session, a session class, a ``sessionmaker`` or a ``scoped_session``:
from then on every row that its flushes delete or update, and every row that an
``update()``/``delete()`` statement run through ``session.execute`` changes, is written
to a :class:`~safe_data.Journal` with its full column state before the statement that
changes it is sent to the database.  :func:`restore_rows` inserts deleted rows again,
:func:`undo_updates` writes overwritten columns back.

Records (docs/sqlalchemy.md has the details): ``kind`` ``"row"``, ``container`` the
table's name (``schema.table`` when it has a schema), ``key`` the primary key as a tuple
in the table's primary key column order; ``values`` is ``{column name: value}`` of the
whole row for ``op == "delete"`` and ``{"row": {column name: old value}, "changed":
[column name, ...]}`` for ``op == "update"``.

How it hooks in: the mapper events ``before_delete`` and ``before_update`` fire for each
row a flush deletes or updates (``session.delete``, ORM cascades, delete-orphan, foreign
keys the unit of work sets to NULL), just before its statement; ``do_orm_execute`` fires
before each statement of ``session.execute``.  The listeners are installed for every
mapper and session while anything is protected and journal only for sessions that are.
"""

from __future__ import annotations

import threading
import weakref
from collections import namedtuple
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Column, and_, event, insert, inspect, select, tuple_, update
from sqlalchemy.orm import Mapper, Session, scoped_session, sessionmaker
from sqlalchemy.schema import sort_tables

from ..journal.journal import default_journal

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import CursorResult, Table

    from ..journal.journal import Journal
    from ..journal.reader import Record

__all__ = ["protect", "restore_rows", "undo_updates", "unprotect"]

KIND = "row"
#: primary keys per ``IN (...)`` when checking which rows exist again
_KEYS_PER_QUERY = 500

_Protection = namedtuple("_Protection", "journal reread")

#: session or session class -> _Protection; a session is protected by its own entry or
#: by the nearest class of its MRO that has one
_protected: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_listening = False
_registry_lock = threading.Lock()  # protect() and unprotect() from several threads


# --- protecting ----------------------------------------------------------------------------


def protect(target, journal: Journal | None = None, *, reread: bool = False):
    """Journal every row that sessions of ``target`` delete or overwrite.

    Parameters
    ----------
    target : Session, Session subclass, sessionmaker or scoped_session
        What to protect: one session, every session of a class (``Session`` itself
        protects all), or every session a factory makes.  Protecting a target again
        replaces its settings; a session covered by several targets is journaled once,
        under the most specific (the session, then the nearest class).
    journal : safe_data.Journal, optional
        Where the rows go.  Default: :func:`safe_data.default_journal` at each flush.
    reread : bool
        Read each row a flush changes from the database (``SELECT ... FOR UPDATE``)
        instead of taking the values the session already holds.  Costs one query per
        row; use it when the session's values can be stale (``expire_on_commit=False``,
        or other writers under READ COMMITTED).  Unloaded columns are always read.

    Returns
    -------
    target
        Unchanged, so that ``Session = protect(sessionmaker(engine))`` reads naturally.
    """
    global _listening
    owner = _owner(target)
    with _registry_lock:
        _protected[owner] = _Protection(journal, reread)
        if not _listening:
            for args in _LISTENERS:
                event.listen(*args)
            _listening = True
    return target


def unprotect(target) -> None:
    """Stop journaling for ``target`` (a no-op if it was not protected).

    The event listeners are removed when nothing protected is left.
    """
    global _listening
    owner = _owner(target)
    with _registry_lock:
        _protected.pop(owner, None)
        if _listening and not _protected:
            for args in _LISTENERS:
                event.remove(*args)
            _listening = False


def _owner(target):
    """The session or session class a protection of ``target`` is registered under."""
    if isinstance(target, scoped_session):
        return _owner(target.session_factory)
    if isinstance(target, sessionmaker):
        return target.class_  # the subclass of Session this factory instantiates
    if isinstance(target, Session) or (isinstance(target, type) and issubclass(target, Session)):
        return target
    raise TypeError(
        "protect() takes a Session, a Session subclass, a sessionmaker or a "
        f"scoped_session, not {type(target).__name__}"
    )


def _protection_of(session) -> _Protection | None:
    for owner in (session, *type(session).__mro__):
        protection = _protected.get(owner)
        if protection is not None:
            return protection
    return None


def _journal_of(protection: _Protection):
    return protection.journal if protection.journal is not None else default_journal()


def _write(journal, op: str, rows) -> None:
    """Journal ``rows`` [(table, key, values)] under the journal's operation lock.

    The lock is held only while records are written, never while SQL runs: a thread
    holding it while waiting for a database lock could deadlock with a thread that holds
    that database lock and waits to journal.
    """
    with journal.operation_lock:
        for table, key, values in rows:
            journal.record(KIND, op, table.fullname, key, values)


# --- rows a flush deletes or updates -------------------------------------------------------


def _before_delete(mapper, connection, target) -> None:
    _journal_instance(mapper, connection, target, "delete")


def _before_update(mapper, connection, target) -> None:
    _journal_instance(mapper, connection, target, "update")


def _journal_instance(mapper, connection, target, op: str) -> None:
    state = inspect(target)
    protection = _protection_of(state.session)
    if protection is None:
        return
    rows = [_instance_row(mapper, connection, state, table, op, protection.reread) for table in mapper.tables]
    _write(_journal_of(protection), op, [row for row in rows if row is not None])


def _instance_row(mapper, connection, state, table, op, reread):
    """(table, key, values) of the row of ``table`` the flush changes, or None."""
    known, changed = _held_values(mapper, state, table)
    if op == "update" and not changed:
        return None
    key = _old_key(mapper, state, table, known)
    row = known
    if reread or len(known) < len(table.columns):
        row = _select_row(connection, table, key)
        if row is None:  # no such row any more: nothing to lose
            return None
    return table, key, row if op == "delete" else {"row": row, "changed": changed}


def _held_values(mapper, state, table):
    """The old values the session holds for ``table``'s columns, and the changed columns.

    Returns ``({column name: old value}, [changed column name])``; a column is missing
    from the first when its value is not loaded (expired, deferred, unmapped) or was
    overwritten before being loaded.
    """
    attribute_of = _attribute_keys(mapper)
    held, changed = {}, []
    for column in table.columns:
        attribute = attribute_of.get(column)
        if attribute is None:
            continue
        history = state.attrs[attribute].history  # never loads anything
        if history.added:
            changed.append(column.name)
        old = history.deleted or history.unchanged
        if old:
            held[column.name] = old[0]
    return held, changed


def _old_key(mapper, state, table, held) -> tuple:
    """``table``'s primary key of the row as stored now (before a primary key change)."""
    attribute_of = _attribute_keys(mapper)
    identity = {attribute_of[c]: v for c, v in zip(mapper.primary_key, state.key[1], strict=True)}
    return tuple(
        identity[attribute_of[c]] if attribute_of.get(c) in identity else held[c.name]
        for c in table.primary_key
    )


_attribute_keys_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _attribute_keys(mapper) -> dict:
    """{Column: attribute name} for every column ``mapper`` maps (cached per mapper)."""
    keys = _attribute_keys_cache.get(mapper)
    if keys is None:
        keys = {}
        for prop in mapper.column_attrs:
            for column in prop.columns:
                keys.setdefault(column, prop.key)
        _attribute_keys_cache[mapper] = keys
    return keys


def _select_row(connection, table, key) -> dict | None:
    query = select(*table.columns).where(_key_clause(table, key)).with_for_update()
    row = connection.execute(query).mappings().first()
    return None if row is None else {c.name: row[c] for c in table.columns}


def _key_clause(table, key):
    return and_(*(column == value for column, value in zip(table.primary_key, key, strict=True)))


# --- update() and delete() statements run by session.execute --------------------------------


def _before_execute(orm_state) -> None:
    if not (orm_state.is_delete or orm_state.is_update):
        return
    protection = _protection_of(orm_state.session)
    if protection is None:
        return
    target = orm_state.statement.entity_description
    entity = target.get("entity")
    mapper = inspect(entity).mapper if entity is not None else None  # None: a Core statement
    if orm_state.is_delete:  # the ORM deletes from the class's own table only
        op, table = "delete", (mapper.local_table if mapper is not None else target["table"])
        rows = [(table, key, row) for key, row, _ in _matched_rows(orm_state, mapper, table)]
    else:
        op, tables = "update", (mapper.tables if mapper is not None else [target["table"]])
        rows = [row for table in tables for row in _updated_rows(orm_state, mapper, table)]
    _write(_journal_of(protection), op, rows)


def _updated_rows(orm_state, mapper, table) -> list:
    """(table, key, {"row", "changed"}) of each row of ``table`` the statement updates."""
    set_keys = _set_clause_keys(orm_state.statement)
    identifying = _by_primary_key(orm_state, mapper)
    primary_key = {c.name for c in table.primary_key}

    def changed_by(params):
        changed = _assigned_columns(set_keys or params, mapper, table)
        # in a bulk UPDATE by primary key, the key only identifies the row
        return [name for name in changed if not (identifying and name in primary_key)]

    if not any(changed_by(params) for params in _parameter_sets(orm_state)):
        return []  # the statement sets no column of this table
    rows = []
    for key, row, params in _matched_rows(orm_state, mapper, table):
        changed = changed_by(params)
        if changed:
            rows.append((table, key, {"row": row, "changed": changed}))
    return rows


def _matched_rows(orm_state, mapper, table) -> list:
    """(key, row, parameters) of each row of ``table`` the statement will change."""
    statement = orm_state.statement
    # selecting from the mapper joins its tables and adds its single-table inheritance
    # criteria, as the ORM does for the statement itself
    query = select(*table.columns).select_from(mapper if mapper is not None else table).with_for_update()
    if statement.whereclause is not None:
        query = query.where(statement.whereclause)
    if _by_primary_key(orm_state, mapper):
        return _rows_by_primary_key(orm_state, mapper, table, query)
    matched: dict[tuple, tuple[dict, dict]] = {}
    for params in _parameter_sets(orm_state):
        for row in _fetch(orm_state, query, params):
            matched.setdefault(_row_key(table, row), (row, params))
    return [(key, row, params) for key, (row, params) in matched.items()]


def _parameter_sets(orm_state) -> list:
    return orm_state.parameters if orm_state.is_executemany else [orm_state.parameters or {}]


def _by_primary_key(orm_state, mapper) -> bool:
    """An ORM "bulk UPDATE by primary key": a list of dicts, each naming its row."""
    return mapper is not None and orm_state.is_executemany


def _rows_by_primary_key(orm_state, mapper, table, query) -> list:
    attribute_names = [_attribute_keys(mapper)[c] for c in table.primary_key]
    keyed = {
        tuple(params[name] for name in attribute_names): params
        for params in orm_state.parameters
        if all(name in params for name in attribute_names)
    }  # else SQLAlchemy refuses
    found = {}
    for chunk in _chunks(list(keyed)):
        for row in _fetch(orm_state, query.where(tuple_(*table.primary_key).in_(chunk)), {}):
            found[_row_key(table, row)] = row
    return [(key, found[key], params) for key, params in keyed.items() if key in found]


def _fetch(orm_state, query, params) -> list:
    result = orm_state.session.execute(query, params, bind_arguments=orm_state.bind_arguments)
    return [{c.name: row[c] for c in query.selected_columns} for row in result.mappings()]


def _row_key(table, row: dict) -> tuple:
    return tuple(row[c.name] for c in table.primary_key)


def _set_clause_keys(statement) -> list:
    """The keys of an UPDATE's ``values()`` (column objects or names), if it has any.

    SQLAlchemy has no public accessor for them; 2.0 keeps ``ordered_values()`` apart.
    """
    keys = list(statement._values or ())
    keys += [key for key, _value in getattr(statement, "_ordered_values", None) or ()]
    return keys


def _assigned_columns(keys, mapper, table) -> list:
    """Names of the columns of ``table`` that SET keys (columns, column keys or attribute
    names) assign, in table order."""
    columns: set[Any] = set()
    for key in keys:
        if isinstance(key, str):
            prop = mapper.column_attrs.get(key) if mapper is not None else None
            candidates = prop.columns if prop is not None else [table.c.get(key)]
        else:
            candidates = [key]
        columns.update(table.corresponding_column(c) for c in candidates if c is not None)
    return [c.name for c in table.columns if c in columns]


# --- putting rows back ---------------------------------------------------------------------


def restore_rows(
    session: Session,
    model_or_table: type | Table,
    *,
    since: datetime | int | None = None,
    until: datetime | int | None = None,
    journal: Journal | None = None,
    only_missing: bool = True,
) -> list[Record]:
    """Insert the journaled deleted rows of a table or mapped class again.

    For each primary key, the most recent deletion in ``[since, until]`` is restored, with
    the column values it had.  The inserts run in the session's transaction: commit to
    keep them.

    Parameters
    ----------
    session : Session
    model_or_table : mapped class or Table
        A mapped class restores its rows in each of its tables and its subclasses' tables
        (joined inheritance), base tables first; rows of a table shared with other
        classes are told apart by the polymorphic discriminator.
    since, until : datetime or int, optional
        Only deletions journaled in this window (ns since the epoch, or datetimes).
    journal : safe_data.Journal, optional
        Default: the journal the session is protected with, else the default journal.
    only_missing : bool
        Skip rows whose primary key exists again.  With False every row is inserted
        (an existing key raises IntegrityError).

    Returns
    -------
    list of safe_data.Record
        The deletion records whose rows were inserted.
    """
    journal = _journal_to_read(session, journal)
    restored: list[Record] = []
    for table, belongs in _tables_of(model_or_table):
        latest = {
            key: records[-1]
            for key, records in _records_by_key(journal, table, "delete", since, until, belongs).items()
        }
        if only_missing:
            for key in _existing_keys(session, table, latest):
                del latest[key]
        if latest:
            session.execute(insert(table), [_parameters(table, r.values) for r in latest.values()])
        restored.extend(latest.values())
    return restored


def undo_updates(
    session: Session,
    model_or_table: type | Table,
    *,
    since: datetime | int | None = None,
    until: datetime | int | None = None,
    journal: Journal | None = None,
) -> list[Record]:
    """Write back the columns that journaled updates in ``[since, until]`` overwrote.

    Per row, every column changed in the window gets the value it had before the first
    change in the window.  Rows that no longer exist (or whose primary key changed) are
    skipped.  The updates run in the session's transaction (and are journaled if it is
    protected): commit to keep them.  Arguments as for :func:`restore_rows`.

    Returns
    -------
    list of safe_data.Record
        For each row written back, the first update record of the window.
    """
    journal = _journal_to_read(session, journal)
    undone = []
    for table, belongs in _tables_of(model_or_table):
        for key, records in _records_by_key(journal, table, "update", since, until, belongs).items():
            changed = {name for record in records for name in record.values["changed"]}
            before = {name: value for name, value in records[0].values["row"].items() if name in changed}
            statement = update(table).where(_key_clause(table, key)).values(_parameters(table, before))
            if cast("CursorResult", session.execute(statement)).rowcount:
                undone.append(records[0])
    return undone


def _journal_to_read(session, journal):
    if journal is not None:
        return journal
    protection = _protection_of(session)
    return _journal_of(protection) if protection is not None else default_journal()


def _tables_of(model_or_table) -> list:
    """[(table, belongs)] to restore, parents first; ``belongs(row)`` tells whether a row
    of a table shared with other mapped classes is one of this class's (None: all are)."""
    mapper = inspect(model_or_table, raiseerr=False)
    if not isinstance(mapper, Mapper):
        return [(model_or_table, None)]
    family = mapper.self_and_descendants
    tables = {table for m in family for table in m.tables}
    ordered = sort_tables(tables)  # parents first
    discriminator = mapper.polymorphic_on
    if not isinstance(discriminator, Column):  # not polymorphic, or on a SQL expression
        return [(table, None) for table in ordered]
    identities = {m.polymorphic_identity for m in family}

    def belongs(row):
        return row[discriminator.name] in identities

    return [(table, belongs if discriminator.table is table else None) for table in ordered]


def _records_by_key(journal, table, op, since, until, belongs) -> dict:
    """{primary key: [record, ...] oldest first} of ``op`` on ``table`` in the window."""
    by_key: dict[tuple, list[Record]] = {}
    for record in journal.records(table.fullname, since, until):
        if record.kind != KIND or record.op != op:
            continue
        row = record.values if op == "delete" else record.values["row"]
        if belongs is None or belongs(row):
            by_key.setdefault(record.key, []).append(record)
    return by_key


def _existing_keys(session, table, keys) -> set:
    existing: set[tuple] = set()
    for chunk in _chunks(list(keys)):
        query = select(*table.primary_key).where(tuple_(*table.primary_key).in_(chunk))
        existing.update(tuple(row) for row in session.execute(query))
    return existing


def _parameters(table, row: dict) -> dict:
    """{column key: value} for the columns of ``table`` named in ``row`` (by column name,
    as journaled; columns dropped since are ignored, columns added since get defaults)."""
    return {c.key: row[c.name] for c in table.columns if c.name in row}


def _chunks(items: list):
    for start in range(0, len(items), _KEYS_PER_QUERY):
        yield items[start : start + _KEYS_PER_QUERY]


_LISTENERS = (
    (Mapper, "before_delete", _before_delete),
    (Mapper, "before_update", _before_update),
    (Session, "do_orm_execute", _before_execute),
)
