"""The SQLAlchemy integration, against a real SQLite database file.

Rows deleted or overwritten through a protected session are journaled with their full
column state before the statement that changes them runs, and come back with
``restore_rows`` / ``undo_updates``.
"""

from __future__ import annotations

import datetime as dt
import doctest
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy import (
    DateTime,
    ForeignKey,
    Numeric,
    String,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    scoped_session,
    sessionmaker,
)

import safe_data
from safe_data.integrations.sqlalchemy import protect, restore_rows, undo_updates, unprotect

from ._helpers import records

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "sqlalchemy.md")
CREATED = dt.datetime(2024, 5, 17, 9, 30, 15, 123456)


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    # no delete cascade: deleting a team sets its members' team_id to NULL
    members: Mapped[list[User]] = relationship(back_populates="team")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str | None]
    balance: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created: Mapped[dt.datetime] = mapped_column(DateTime)
    bio: Mapped[str | None] = mapped_column(Text, deferred=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    team: Mapped[Team | None] = relationship(back_populates="members")
    posts: Mapped[list[Post]] = relationship(back_populates="author", cascade="all, delete-orphan")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str]
    author: Mapped[User] = relationship(back_populates="posts")


class Membership(Base):
    __tablename__ = "memberships"
    group: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str]
    since: Mapped[dt.datetime]


class Employee(Base):
    __tablename__ = "employees"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    type: Mapped[str]
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}


class Engineer(Employee):  # joined inheritance: a row in employees and one in engineers
    __tablename__ = "engineers"
    id: Mapped[int] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    language: Mapped[str]
    __mapper_args__ = {"polymorphic_identity": "engineer"}


class Manager(Employee):  # single-table inheritance: a row in employees only
    __mapper_args__ = {"polymorphic_identity": "manager"}


ANN = {
    "id": 1,
    "name": "ann",
    "email": None,
    "balance": Decimal("12.50"),
    "created": CREATED,
    "bio": "likes tea",
    "team_id": None,
}
BOB = {
    "id": 2,
    "name": "bob",
    "email": "bob@example.org",
    "balance": Decimal("-3.10"),
    "created": CREATED + dt.timedelta(days=1),
    "bio": None,
    "team_id": None,
}
POSTS = [{"id": 10, "user_id": 1, "title": "hello"}, {"id": 11, "user_id": 1, "title": "again"}]


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def make_session(engine, journal):
    """A protected sessionmaker, with ann (two posts) and bob in the database."""
    maker = sessionmaker(engine)
    with maker() as session:
        session.add(User(**ANN, posts=[Post(id=p["id"], title=p["title"]) for p in POSTS]))
        session.add(User(**BOB))
        session.commit()
    protect(maker, journal)
    yield maker
    unprotect(maker)


def row_records(journal, table, op=None):
    return [r for r in records(journal, table) if r.kind == "row" and (op is None or r.op == op)]


def table_rows(engine, table):
    """Every row of ``table`` as {column name: value}, by primary key, read with Core."""
    table = Base.metadata.tables[table]
    with engine.connect() as conn:
        return {
            tuple(row[c] for c in table.primary_key): {c.name: row[c] for c in table.columns}
            for row in conn.execute(select(table)).mappings()
        }


# --- what a flush journals -----------------------------------------------------------------


def test_delete_of_an_expired_object_journals_its_full_row(make_session, journal):
    with make_session() as session:
        bob = session.get(User, 2)
        session.commit()  # expires bob: no column is loaded, the deferred bio never was
        session.delete(bob)
        session.commit()
    [record] = row_records(journal, "users")
    assert (record.container, record.kind, record.op, record.key) == ("users", "row", "delete", (2,))
    assert record.values == BOB
    assert type(record.values["balance"]) is Decimal and type(record.values["created"]) is dt.datetime


def test_orm_cascade_and_delete_orphan_rows_are_journaled(make_session, journal):
    with make_session() as session:
        ann = session.get(User, 1)
        ann.posts.remove(ann.posts[1])  # delete-orphan: found by the flush, not in session.deleted
        session.commit()
        assert [r.values for r in row_records(journal, "posts", "delete")] == [POSTS[1]]
        session.delete(ann)  # cascades to the remaining post
        session.commit()
    assert [r.values for r in row_records(journal, "posts", "delete")] == [POSTS[1], POSTS[0]]
    assert [r.values for r in row_records(journal, "users")] == [ANN]


def test_update_journals_the_old_row_and_the_changed_columns(make_session, journal):
    with make_session() as session:
        bob = session.get(User, 2)
        bob.email = "robert@example.org"
        bob.balance += 1
        bob.name = "bob"  # the same value: not a change
        session.commit()
        bob.name = "robert"  # expired by the commit: overwritten without loading the old value
        session.commit()
    first, second = row_records(journal, "users")
    assert (first.op, first.key) == ("update", (2,))
    assert first.values == {"row": BOB, "changed": ["email", "balance"]}
    assert second.values["changed"] == ["name"]
    assert second.values["row"] == dict(BOB, email="robert@example.org", balance=Decimal("-2.10"))


def test_foreign_keys_the_flush_sets_to_null_are_journaled(make_session, journal):
    with make_session() as session:
        team = Team(id=7, name="core", members=[session.get(User, 1), session.get(User, 2)])
        session.add(team)
        session.commit()
        session.delete(team)
        session.commit()
    # joining the team overwrote team_id None, leaving it overwrote 7
    updates = [
        (r.key, r.values["changed"], r.values["row"]["team_id"])
        for r in row_records(journal, "users", "update")
    ]
    assert sorted(updates[:2]) == [((1,), ["team_id"], None), ((2,), ["team_id"], None)]
    assert sorted(updates[2:]) == [((1,), ["team_id"], 7), ((2,), ["team_id"], 7)]
    assert [r.values for r in row_records(journal, "teams")] == [{"id": 7, "name": "core"}]


def test_each_row_is_journaled_before_its_statement_runs(make_session, journal, engine):
    seen = []

    @event.listens_for(engine, "before_cursor_execute")
    def check(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(("DELETE", "UPDATE")):
            seen.append((statement.split()[0], len(records(journal))))

    with make_session() as session:
        session.delete(session.get(User, 2))
        session.commit()
        session.get(User, 1).email = "ann@example.org"
        session.commit()
    assert seen == [("DELETE", 1), ("UPDATE", 2)]


def test_a_row_that_cannot_be_journaled_is_not_changed(make_session, journal, engine):
    journal.close()
    with make_session() as session:
        session.delete(session.get(User, 2))
        with pytest.raises(safe_data.JournalClosedError):
            session.commit()
    assert table_rows(engine, "users")[(2,)] == BOB


def test_rollback_after_flush_keeps_the_record_and_restore_skips_it(make_session, journal, engine):
    with make_session() as session:
        session.delete(session.get(User, 2))
        session.flush()
        session.rollback()
        assert [r.key for r in row_records(journal, "users")] == [(2,)]  # at least once
        assert restore_rows(session, User) == []  # bob is still there
    assert table_rows(engine, "users")[(2,)] == BOB


def test_stale_session_values_and_reread(make_session, journal, engine):
    with make_session(expire_on_commit=False) as session:
        ann, bob = session.get(User, 1), session.get(User, 2)
        assert (ann.bio, bob.bio) == ("likes tea", None)  # load the deferred column too
        session.commit()  # keeps the loaded values
        with engine.begin() as conn:  # another writer changes both rows
            conn.execute(text("UPDATE users SET email = 'changed@elsewhere'"))
        session.delete(bob)
        session.commit()
        protect(session, journal, reread=True)
        session.delete(ann)
        session.commit()
        unprotect(session)
    stale, fresh = row_records(journal, "users")
    assert stale.values["email"] == "bob@example.org"  # what the session held
    assert fresh.values == dict(ANN, email="changed@elsewhere")  # what the database held


def test_composite_primary_key(make_session, journal, engine):
    with make_session() as session:
        session.add(Membership(group="admins", user_id=1, role="owner", since=CREATED))
        session.commit()
        session.delete(session.get(Membership, ("admins", 1)))
        session.commit()
        [record] = row_records(journal, "memberships")
        assert record.key == ("admins", 1)
        assert record.values == {"group": "admins", "user_id": 1, "role": "owner", "since": CREATED}
        assert restore_rows(session, Membership) == [record]
        session.commit()
    assert table_rows(engine, "memberships") == {("admins", 1): record.values}


# --- session.execute(update(...)) and delete(...) -------------------------------------------


def test_bulk_statements_through_the_session_are_journaled(make_session, journal):
    with make_session() as session:
        session.execute(update(User).where(User.id == 1).values(name="ANN"))
        session.execute(update(User), [{"id": 2, "email": None}])  # bulk UPDATE by primary key
        session.execute(delete(Post.__table__).where(Post.__table__.c.title == "again"))  # Core
        session.execute(delete(User).where(User.balance < 0))
        session.query(Post).filter(Post.id == 10).update({"title": "hi"})  # the legacy Query API
        session.query(Post).filter(Post.id == 10).delete()
        session.commit()
    users = row_records(journal, "users")
    update_ann, update_bob, delete_bob = users
    assert [(r.op, r.key) for r in users] == [("update", (1,)), ("update", (2,)), ("delete", (2,))]
    assert update_ann.values == {"row": ANN, "changed": ["name"]}
    assert update_bob.values == {"row": BOB, "changed": ["email"]}
    assert delete_bob.values == dict(BOB, email=None)
    posts = [(r.op, r.values) for r in row_records(journal, "posts")]
    assert posts == [
        ("delete", POSTS[1]),
        ("update", {"row": POSTS[0], "changed": ["title"]}),
        ("delete", dict(POSTS[0], title="hi")),
    ]


def test_core_executemany_through_the_session_is_journaled_per_parameter_set(make_session, journal):
    users = User.__table__
    statement = update(users).where(users.c.id == bindparam("uid")).values(name=bindparam("new_name"))
    with make_session() as session:
        session.execute(statement, [{"uid": 1, "new_name": "A"}, {"uid": 2, "new_name": "B"}])
        session.commit()
    assert [(r.key, r.values) for r in row_records(journal, "users")] == [
        ((1,), {"row": ANN, "changed": ["name"]}),
        ((2,), {"row": BOB, "changed": ["name"]}),
    ]


def test_bulk_statements_on_inherited_classes_journal_only_their_rows(make_session, journal):
    with make_session() as session:
        session.add_all([Engineer(id=1, name="eve", language="rust"), Manager(id=2, name="max")])
        session.commit()
        session.execute(update(Engineer).where(Engineer.language == "rust").values(language="go"))
        session.execute(delete(Manager))  # single-table: the ORM adds WHERE type = 'manager'
        session.commit()
    [engineer] = row_records(journal, "engineers")
    assert (engineer.op, engineer.values) == (
        "update",
        {"row": {"id": 1, "language": "rust"}, "changed": ["language"]},
    )
    assert [(r.op, r.values) for r in row_records(journal, "employees")] == [
        ("delete", {"id": 2, "name": "max", "type": "manager"})
    ]


def test_sql_outside_the_orm_statements_is_not_journaled(make_session, journal, engine):
    with make_session() as session:
        session.execute(text("DELETE FROM posts WHERE id = 10"))  # raw SQL
        session.connection().execute(delete(Post.__table__))  # Core on the connection
        session.commit()
    assert records(journal) == []


# --- putting rows back -----------------------------------------------------------------------


def test_restore_rows_puts_deleted_rows_back_with_identical_values(make_session, journal, engine):
    before = {name: table_rows(engine, name) for name in ("users", "posts")}
    with make_session() as session:
        for user in session.scalars(select(User)):
            session.delete(user)
        session.commit()
        assert table_rows(engine, "users") == {}
        restored = restore_rows(session, User) + restore_rows(session, Post)
        session.commit()
    assert sorted((r.container, r.key) for r in restored) == [
        ("posts", (10,)),
        ("posts", (11,)),
        ("users", (1,)),
        ("users", (2,)),
    ]
    after = {name: table_rows(engine, name) for name in ("users", "posts")}
    assert after == before
    assert after["users"][(1,)] == ANN and type(after["users"][(1,)]["balance"]) is Decimal


def test_restore_rows_skips_keys_that_exist_again_and_honours_the_window(make_session, journal):
    with make_session() as session:
        session.delete(session.get(User, 1))
        session.commit()
        between = dt.datetime.now(dt.timezone.utc)
        session.delete(session.get(User, 2))
        session.commit()
        session.add(User(**dict(BOB, name="new bob")))
        session.commit()
        assert restore_rows(session, User, since=between) == []  # bob exists again
        with pytest.raises(IntegrityError):
            restore_rows(session, User, since=between, only_missing=False)
        session.rollback()
        [record] = restore_rows(session, User, until=between)
        assert record.key == (1,)
        session.commit()
        assert session.get(User, 1).bio == "likes tea"


def test_restore_rows_with_joined_and_single_table_inheritance(make_session, journal, engine):
    with make_session() as session:
        session.add_all([Engineer(id=1, name="eve", language="rust"), Manager(id=2, name="max")])
        session.commit()
        session.delete(session.get(Employee, 1))
        session.delete(session.get(Employee, 2))
        session.commit()
        assert sorted(r.container for r in restore_rows(session, Engineer)) == ["employees", "engineers"]
        assert [r.values for r in restore_rows(session, Manager)] == [
            {"id": 2, "name": "max", "type": "manager"}
        ]
        session.commit()
        session.expunge_all()
        employees = session.scalars(select(Employee).order_by(Employee.id))
        assert [(type(e).__name__, e.name) for e in employees] == [("Engineer", "eve"), ("Manager", "max")]
        assert session.get(Engineer, 1).language == "rust"


def test_undo_updates_writes_back_the_values_before_the_window(make_session, journal, engine):
    with make_session() as session:
        bob = session.get(User, 2)
        bob.email = "one@example.org"
        session.commit()
        bob.email, bob.name = "two@example.org", "robert"
        session.commit()
        [first] = undo_updates(session, User)
        session.commit()
    assert first.values["row"] == BOB
    assert table_rows(engine, "users")[(2,)] == BOB
    undo = row_records(journal, "users")[-1]  # the undo is journaled like any update
    assert undo.values == {
        "row": dict(BOB, email="two@example.org", name="robert"),
        "changed": ["name", "email"],
    }


# --- protecting and unprotecting ---------------------------------------------------------------


def test_unprotect_stops_journaling(make_session, journal):
    unprotect(make_session)
    with make_session() as session:
        session.delete(session.get(User, 2))
        session.execute(delete(Post))
        session.commit()
    assert records(journal) == []
    unprotect(make_session)  # a no-op now


def test_every_kind_of_target_and_the_most_specific_wins(engine, journal, tmp_path):
    other = safe_data.Journal(tmp_path / "other")
    try:
        for target in (Session, scoped_session(sessionmaker(engine))):
            protect(target, other)
            with Session(engine) if target is Session else target() as session:
                session.add(Team(id=1, name="a"))
                session.commit()
                session.delete(session.get(Team, 1))
                session.commit()
            unprotect(target)
        with Session(engine) as session:
            protect(Session, other)
            protect(session, journal)  # the session itself: its journal wins, once
            session.add(Team(id=1, name="a"))
            session.commit()
            session.delete(session.get(Team, 1))
            session.commit()
            unprotect(session)
            unprotect(Session)
        assert len(row_records(other, "teams")) == 2
        assert len(row_records(journal, "teams")) == 1
    finally:
        other.close()
    with pytest.raises(TypeError, match="sessionmaker"):
        protect(engine)


def test_default_journal_is_used_when_none_is_given(engine):
    maker = protect(sessionmaker(engine))
    try:
        with maker() as session:
            session.add(Team(id=1, name="a"))
            session.commit()
            session.delete(session.get(Team, 1))
            session.commit()
    finally:
        unprotect(maker)
    assert [r.key for r in records(safe_data.default_journal(), "teams")] == [(1,)]


def test_importing_safe_data_does_not_import_sqlalchemy():
    code = "import sys, safe_data, safe_data.integrations; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_documentation_examples_run():
    result = doctest.testfile(DOCS, module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
