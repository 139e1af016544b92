"""The feedback store: what the server answered for a drawing, and the person's correction.

SQL through SQLAlchemy: SQLite by default (`FEEDBACK_DB_URL`, `sqlite:///mlruns/feedback.db`),
PostgreSQL by URL. SQLite runs in WAL mode with synchronous=FULL, so a row whose commit
returned is on disk: it survives the process being killed a moment later (and a power cut).
Answers awaiting a correction (`pending_answers`) are written without waiting for the disk
(synchronous=NORMAL; on PostgreSQL synchronous_commit off): one is written per prediction,
and a power cut that loses the last few only means their corrections get a 404.
The schema is alembic's (corrections/migrations), upgraded on first use, never `create_all`; its
version table has a name of its own, so the store may share a database with MLflow's.

No Flask here: the web UI writes through this module and `python -m training feedback`
reads through it; neither package imports the other.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "feedback_alembic_version"
CONNECT_TIMEOUT_S = 3  # a PostgreSQL that does not answer must not hold a request for long

metadata = sa.MetaData()
corrections = sa.Table(
    "corrections", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prediction_id", sa.String(64), nullable=False, unique=True),
    sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False, index=True),
    sa.Column("model_label", sa.String(64), nullable=False),
    sa.Column("digit", sa.SmallInteger, nullable=False),
    sa.Column("probabilities", sa.JSON, nullable=False),
    sa.Column("correction", sa.SmallInteger, nullable=True),  # None: the answer was right
    sa.Column("png", sa.LargeBinary, nullable=True),  # None: over the size cap
    sa.Column("normalized", sa.LargeBinary, nullable=False),
    sa.Column("challenger_version", sa.String(32), nullable=True),
    sa.Column("challenger_digit", sa.SmallInteger, nullable=True),
)
# Answers awaiting a correction, written at predict time so that any web UI replica can take
# the correction; rows past `expires_at` (seconds since the epoch) are purged.
pending_answers = sa.Table(
    "pending_answers", metadata,
    sa.Column("prediction_id", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("model_label", sa.String(64), nullable=False),
    sa.Column("digit", sa.SmallInteger, nullable=False),
    sa.Column("probabilities", sa.JSON, nullable=False),
    sa.Column("png", sa.LargeBinary, nullable=True),
    sa.Column("normalized", sa.LargeBinary, nullable=False),
    sa.Column("challenger_version", sa.String(32), nullable=True),
    sa.Column("challenger_digit", sa.SmallInteger, nullable=True),
)


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or written; nothing was stored."""


@dataclass(frozen=True)
class Answer:
    """One answer as the server gave it, kept until the person corrects it (or not)."""

    prediction_id: str
    predicted_at: datetime
    model_name: str
    model_version: str
    model_label: str
    digit: int
    probabilities: tuple[float, ...]
    png: bytes | None
    normalized: bytes
    challenger_version: str | None = None
    challenger_digit: int | None = None


@dataclass(frozen=True)
class Correction:
    """A stored row: the answer, and what the person said about it."""

    id: int
    answer: Answer
    correction: int | None
    corrected_at: datetime

    @property
    def label(self) -> int:
        """The true digit: the correction, or the answer itself when it was right."""
        return self.answer.digit if self.correction is None else self.correction


def make_engine(url: str, durable: bool = True) -> sa.Engine:
    """An engine for `url` (connects nothing yet); SQLite gets WAL, a wait, and
    synchronous=FULL. Not `durable`: commits do not wait for the disk (SQLite synchronous=NORMAL,
    PostgreSQL synchronous_commit=off), safe from a crash, not from a power cut."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 10})
        sa.event.listen(engine, "connect",
                        functools.partial(_sqlite_pragmas, "FULL" if durable else "NORMAL"))
        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if not durable:
            connect_args["options"] = "-c synchronous_commit=off"
    return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(synchronous: str, dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class FeedbackStore:
    """Save and read corrections; the schema is brought up to date once, on first use."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.pending_engine = make_engine(url, durable=False)  # answers, not corrections
        self._migrated = False
        self._lock = threading.Lock()

    def migrate(self) -> None:
        """Upgrade the schema to alembic's head (once per process); StoreUnavailable if down."""
        if self._migrated:
            return
        from alembic import command
        from alembic.config import Config

        with self._lock:
            if self._migrated:
                return
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            try:
                database = self.engine.url.database
                if self.engine.url.get_backend_name() == "sqlite" and database:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreUnavailable(f"cannot create the folder for {database}: {e}") from e
            try:
                with self.engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            except SQLAlchemyError as e:
                raise StoreUnavailable(_reason(e)) from e
            self._migrated = True

    def save(self, answer: Answer, correction: int | None) -> int:
        """Store the answer with its correction in one transaction; return the row's id.

        A second correction of the same prediction replaces the first (same row, same id).
        """
        self.migrate()
        values = {**_answer_columns(answer), "correction": correction,
                  "corrected_at": datetime.now(answer.predicted_at.tzinfo)}
        try:
            try:
                return self._upsert(answer.prediction_id, values)
            except IntegrityError:  # another writer inserted the same prediction just now
                return self._upsert(answer.prediction_id, values)
        except SQLAlchemyError as e:
            raise StoreUnavailable(_reason(e)) from e

    def _upsert(self, prediction_id: str, values: dict) -> int:
        with self.engine.begin() as connection:
            row_id = connection.execute(
                sa.select(corrections.c.id).where(corrections.c.prediction_id == prediction_id)
            ).scalar()
            if row_id is None:
                inserted = connection.execute(corrections.insert().values(**values))
                return inserted.inserted_primary_key[0]
            connection.execute(corrections.update().where(corrections.c.id == row_id).values(
                correction=values["correction"], corrected_at=values["corrected_at"]))
            return row_id

    def corrections(self, with_png: bool = False) -> Iterator[Correction]:
        """Every stored row, oldest first (the PNGs only when asked: they are the bulk)."""
        self.migrate()
        columns = [c for c in corrections.c if with_png or c.name != "png"]
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(sa.select(*columns).order_by(corrections.c.id)).all()
        except SQLAlchemyError as e:
            raise StoreUnavailable(_reason(e)) from e
        for row in rows:
            yield _correction(row._mapping)

    def get(self, prediction_id: str) -> Correction | None:
        self.migrate()
        try:
            with self.engine.connect() as connection:
                row = connection.execute(sa.select(corrections).where(
                    corrections.c.prediction_id == prediction_id)).first()
        except SQLAlchemyError as e:
            raise StoreUnavailable(_reason(e)) from e
        return _correction(row._mapping) if row else None

    def count(self) -> int:
        self.migrate()
        try:
            with self.engine.connect() as connection:
                query = sa.select(sa.func.count()).select_from(corrections)
                return connection.execute(query).scalar()
        except SQLAlchemyError as e:
            raise StoreUnavailable(_reason(e)) from e

    def keep_pending(self, answer: Answer, expires_at: float) -> None:
        """Keep an answer until `expires_at` (epoch seconds) for a correction to find it."""
        self.migrate()
        try:
            with self.pending_engine.begin() as connection:
                connection.execute(pending_answers.insert().values(
                    **_answer_columns(answer), expires_at=expires_at))
        except SQLAlchemyError as e:
            raise StoreUnavailable(_reason(e)) from e

    def pending(self, prediction_id: str) -> Answer | None:
        """The answer kept under `prediction_id`, or None (never kept, or purged)."""
        self.migrate()
        try:
            with self.engine.connect() as connection:
                row = connection.execute(sa.select(pending_answers).where(
                    pending_answers.c.prediction_id == prediction_id)).first()
        except SQLAlchemyError as e:
            raise StoreUnavailable(_reason(e)) from e
        if row is None:
            return None
        answer = _answer(row._mapping)
        if answer.predicted_at.tzinfo is None:  # SQLite keeps no zone; what it got was UTC
            answer = replace(answer, predicted_at=answer.predicted_at.replace(tzinfo=UTC))
        return answer

    def purge_pending(self, now: float) -> int:
        """Delete the answers that expired before `now`; return how many went."""
        self.migrate()
        try:
            with self.pending_engine.begin() as connection:
                return connection.execute(pending_answers.delete().where(
                    pending_answers.c.expires_at < now)).rowcount
        except SQLAlchemyError as e:
            raise StoreUnavailable(_reason(e)) from e

    def where(self) -> str:
        """The URL without its password, to show people where the store is."""
        return sa.make_url(self.url).render_as_string(hide_password=True)


def _answer_columns(answer: Answer) -> dict:
    return {
        "prediction_id": answer.prediction_id, "predicted_at": answer.predicted_at,
        "model_name": answer.model_name, "model_version": answer.model_version,
        "model_label": answer.model_label, "digit": answer.digit,
        "probabilities": list(answer.probabilities), "png": answer.png,
        "normalized": answer.normalized, "challenger_version": answer.challenger_version,
        "challenger_digit": answer.challenger_digit,
    }


def _answer(row) -> Answer:
    png = row.get("png")
    return Answer(
        prediction_id=row["prediction_id"], predicted_at=row["predicted_at"],
        model_name=row["model_name"], model_version=row["model_version"],
        model_label=row["model_label"], digit=row["digit"],
        probabilities=tuple(row["probabilities"]), png=None if png is None else bytes(png),
        normalized=bytes(row["normalized"]), challenger_version=row["challenger_version"],
        challenger_digit=row["challenger_digit"])


def _correction(row) -> Correction:
    return Correction(row["id"], _answer(row), row["correction"], row["corrected_at"])


def _reason(error: SQLAlchemyError) -> str:
    """The driver's first line: enough to act on, without SQL or parameters."""
    original = getattr(error, "orig", None) or error
    return str(original).strip().splitlines()[0] if str(original).strip() else type(error).__name__
