"""The feedback store against real databases: SQLite in a temp folder and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from corrections.store import VERSION_TABLE, Answer, FeedbackStore, StoreUnavailable, metadata
from tests.support.servers import ROOT, free_port


def answer(prediction_id: str = "p1-0", digit: int = 3, version: str = "1") -> Answer:
    return Answer(prediction_id=prediction_id, predicted_at=datetime.now(UTC), model_name="mnist",
                  model_version=version, model_label="stable", digit=digit,
                  probabilities=tuple(0.91 if d == digit else 0.01 for d in range(10)),
                  png=b"\x89PNG fake", normalized=bytes(range(256)) * 3 + bytes(16),
                  challenger_version="2", challenger_digit=5)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store/feedback.db"
    pg = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(pg)
    with engine.begin() as connection:  # each test starts from an empty database
        connection.execute(sa.text("DROP TABLE IF EXISTS corrections, pending_answers, "
                                    "feedback_alembic_version"))
    engine.dispose()
    return pg


def test_a_correction_is_stored_whole_and_a_second_one_replaces_it(url):
    store = FeedbackStore(url)
    first = store.save(answer(), None)
    assert store.save(answer(), 7) == first  # same prediction: same row, new correction
    other = store.save(answer("p2-0", digit=1), None)
    assert other != first
    rows = list(store.corrections(with_png=True))
    assert [r.id for r in rows] == [first, other]
    assert rows[0].answer.prediction_id == "p1-0"
    kept = rows[0].answer
    assert (kept.digit, kept.model_version, kept.model_label) == (3, "1", "stable")
    assert kept.probabilities == answer().probabilities
    assert kept.png == b"\x89PNG fake" and kept.normalized == answer().normalized
    assert (kept.challenger_version, kept.challenger_digit) == ("2", 5)
    assert rows[0].correction == 7 and rows[0].label == 7
    assert rows[1].correction is None and rows[1].label == 1
    assert next(store.corrections()).answer.png is None  # the bulk only on request


def test_the_schema_is_alembics_and_matches_the_tables_the_code_uses(url):
    store = FeedbackStore(url)
    store.migrate()
    FeedbackStore(url).migrate()  # a second process upgrading finds nothing to do
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == "0002"
        assert compare_metadata(context, metadata) == []


def test_pending_answers_are_found_until_purged_and_keep_their_zone(url):
    store = FeedbackStore(url)
    store.keep_pending(answer("p1-a"), expires_at=1000.0)
    store.keep_pending(replace(answer("p1-b", digit=7), png=None), expires_at=2000.0)
    kept = store.pending("p1-a")
    assert kept.prediction_id == "p1-a" and kept.png == b"\x89PNG fake"
    assert kept.normalized == answer().normalized and kept.predicted_at.tzinfo is not None
    assert store.pending("p1-b").png is None and store.pending("p1-c") is None
    assert store.purge_pending(now=1500.0) == 1
    assert store.pending("p1-a") is None and store.pending("p1-b").digit == 7
    assert store.count() == 0  # kept answers are not corrections


def test_postgresql_commits_answers_without_waiting_and_corrections_with(postgres_url):
    store = FeedbackStore(postgres_url)
    for engine, expected in ((store.pending_engine, "off"), (store.engine, "on")):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == expected


def test_sqlite_runs_in_wal_with_full_sync(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path}/feedback.db")
    store.save(answer(), None)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    with store.pending_engine.connect() as connection:  # answers only, not corrections
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with sqlite3.connect(tmp_path / "feedback.db") as plain:
        assert plain.execute("SELECT count(*) FROM corrections").fetchone() == (1,)


def test_a_commit_survives_kill_9_a_moment_later(tmp_path):
    """A child process saves, says so, and is SIGKILLed: the row is there afterwards."""
    url = f"sqlite:///{tmp_path}/feedback.db"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from tests.unit.test_feedback_store import answer
        from corrections.store import FeedbackStore
        store = FeedbackStore({url!r})
        for i in range(50):
            store.save(answer(f"p1-{{i}}"), i % 10)
        print("saved", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -9 and done.stdout == "saved\n", done.stderr
    assert FeedbackStore(url).count() == 50


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none",
    "sqlite:////proc/no-such-folder/feedback.db",
])
def test_an_unreachable_store_says_so_and_keeps_nothing(url):
    store = FeedbackStore(url)
    with pytest.raises(StoreUnavailable):
        store.save(answer(), 4)
