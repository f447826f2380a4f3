"""Engine and sessions. The request owns the transaction: services never commit.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so concurrent participants
queue for the write lock instead of failing (and, within a process, queue on a Python lock that
hands over at once); PostgreSQL needs nothing special.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kw: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        _queue_writers(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20, **kw)


def _queue_writers(engine: Engine) -> None:
    """Within a process, SQLite writers wait for each other on a Python lock.

    SQLite has one writer at a time, and a connection that finds the database locked sleeps in
    steps of up to 100 ms before it tries again: under load a write waited far longer than the
    write ahead of it took. A lock taken before a transaction's first write and released when
    the transaction ends hands the turn straight to the next thread. (Writers in other processes
    still meet SQLite's busy timeout.)
    """
    turn = threading.Lock()  # not an RLock: a transaction may end on another thread than it began on
    holders: set[Any] = set()  # the DBAPI connection whose transaction holds the turn (one at most)

    @event.listens_for(engine, "before_cursor_execute")
    def _take(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if cursor.connection not in holders and statement.lstrip()[:6].upper() not in ("SELECT", "PRAGMA"):
            if not turn.acquire(timeout=30):
                raise TimeoutError("another write held the database for 30 s; nothing was stored, try again")
            holders.add(cursor.connection)

    def _release(dbapi_connection: Any) -> None:
        if dbapi_connection in holders:
            holders.discard(dbapi_connection)
            turn.release()

    # Released once SQLite's own COMMIT or ROLLBACK has run (the engine's commit and rollback
    # events fire before it), so the next writer finds the database free. This also covers a
    # connection returned to the pool with its transaction open: the pool rolls it back.
    dialect = engine.dialect
    for name in ("do_commit", "do_rollback"):

        def end_then_release(connection: Any, _end: Any = getattr(dialect, name)) -> None:
            try:
                _end(connection)
            finally:
                _release(getattr(connection, "dbapi_connection", connection))

        setattr(dialect, name, end_then_release)
    event.listen(engine, "invalidate", lambda dbapi_connection, _record, _exc: _release(dbapi_connection))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
