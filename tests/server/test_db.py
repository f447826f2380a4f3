"""The SQLite engine: writers in one process take turns on a lock that every ending releases."""

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import make_engine


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_the_write_turn_is_released_however_a_transaction_ends(tmp_path: Path, ending: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (x INTEGER)"))
    first, other = engine.connect(), engine.connect()  # two DBAPI connections: two transactions
    first.execute(text("INSERT INTO t VALUES (1)"))
    getattr(first, ending)()
    done = threading.Event()

    def second_writer() -> None:
        other.execute(text("INSERT INTO t VALUES (2)"))
        other.commit()
        done.set()

    threading.Thread(target=second_writer, daemon=True).start()
    assert done.wait(5), f"a transaction ended by {ending} kept the write turn"
    assert other.execute(text("SELECT count(*) FROM t")).scalar() == (2 if ending == "commit" else 1)
    other.close()
    first.close()
    engine.dispose()


def test_the_migrations_build_exactly_the_models(db_url: str) -> None:
    """`alembic check` on a database migrated to head: the tables the models declare, no more, no less."""
    from app.migrate import check

    check(db_url)  # raises if an upgrade operation would be needed
