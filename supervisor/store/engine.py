"""Engine creation and schema migration for SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import logging
import re
import select
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError

from cuefarm import lockfile

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# A pooled PostgreSQL connection unused for this long is pinged (a round trip) before it is
# handed out: a dropped link shows there, not in the middle of a transaction.  One in steady use
# is pinged only when its socket has something to read while no query is out: the server said
# goodbye (restarted, or ended the session).  A ping per checkout would be a round trip per
# transaction on the hot path.  A link lost silently while in steady use fails one statement;
# the pool then replaces every connection.
PING_IDLE = 2.0
# SQLite: how long a thread waits for the writer's turn before its transaction fails (as
# SQLite's own busy timeout, below).
WRITER_WAIT = 30.0
# SQLite: seconds between copies of the write-ahead log into the database (see Checkpointer).
CHECKPOINT_EVERY = 0.5


def make_engine(url: str) -> Engine:
    """Create the engine: SQLite gets WAL, foreign keys, a busy timeout and immediate
    transactions (two writers never deadlock on a lock upgrade); PostgreSQL gets batched
    executemany so set-based updates of many rows are a few round trips."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")   # every committed state change survives
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        _one_writer(engine)
        return engine
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":   # psycopg2 is the driver we ship and test
            u = u.set(drivername="postgresql+psycopg2")
        if u.drivername == "postgresql+psycopg2":
            try:
                import psycopg2  # noqa: F401
            except ImportError:
                raise ValueError("PostgreSQL needs the psycopg2 driver, which this installation "
                                 "lacks: pip install 'cuefarm[postgres]'") from None
        engine = create_engine(u, executemany_mode="values_plus_batch",
                               executemany_batch_page_size=500)
        _ping_when_needed(engine)
        return engine
    raise ValueError(f"unsupported database {u.get_backend_name()!r} (use sqlite or postgresql)")


READ_ONLY = "cuefarm_read_only"     # execution option: a transaction that writes nothing


def _begin(conn: Connection, dbapi_conn: Any, sql: str) -> None:
    """SQLite's BEGIN, on the DBAPI connection itself (every transaction begins so: a
    statement through SQLAlchemy costs several times SQLite's own work), its error raised as
    SQLAlchemy raises them."""
    try:
        dbapi_conn.execute(sql)
    except sqlite3.Error as e:
        raise DBAPIError.instance(sql, (), e, sqlite3.Error, dialect=conn.dialect) from e


def reading(engine: Engine) -> Connection:
    """A connection for transactions that write nothing: on SQLite they neither wait for the
    writer nor keep it waiting."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def _one_writer(engine: Engine) -> None:
    """SQLite has one writer at a time.  The threads of this process take turns on a lock
    before they ask SQLite for the write lock (BEGIN IMMEDIATE), and give it back once their
    COMMIT or ROLLBACK is done: none of them sleeps in SQLite's busy handler, which sleeps up
    to 100 ms at a time and lets others cut in while it sleeps (a huge submit's slices kept
    the loop waiting half a second so).  Transactions that write nothing (`reading`) begin
    deferred: in WAL mode they read a snapshot beside the writer."""
    lock = threading.Lock()
    holder: list[Any] = [None]          # the DBAPI connection holding the lock

    def release(dbapi_conn: Any) -> None:
        # SQLAlchemy hands the dialect the pool's proxy of the connection, events the DBAPI
        # connection itself.
        dbapi_conn = getattr(dbapi_conn, "dbapi_connection", dbapi_conn)
        if holder[0] is dbapi_conn:
            holder[0] = None
            lock.release()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):
        dbapi_conn = conn.connection.dbapi_connection
        if conn.get_execution_options().get(READ_ONLY):
            _begin(conn, dbapi_conn, "BEGIN")
            return
        if not lock.acquire(timeout=WRITER_WAIT):
            raise sqlite3.OperationalError(
                f"database is locked: another thread of this process kept the writer's turn "
                f"for {WRITER_WAIT:.0f} s")
        holder[0] = dbapi_conn
        try:
            _begin(conn, dbapi_conn, "BEGIN IMMEDIATE")
        except BaseException:
            release(dbapi_conn)
            raise

    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def commit(dbapi_conn: Any) -> None:
        try:
            do_commit(dbapi_conn)
        finally:
            release(dbapi_conn)

    def rollback(dbapi_conn: Any) -> None:
        try:
            do_rollback(dbapi_conn)
        finally:
            release(dbapi_conn)

    dialect.do_commit, dialect.do_rollback = commit, rollback

    # A connection given back, closed or dropped with the lock still held gives it back.
    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn, _record):
        release(dbapi_conn)

    @event.listens_for(engine, "invalidate")
    def _invalidate(dbapi_conn, _record, _exc):
        release(dbapi_conn)


class Checkpointer:
    """SQLite: the write-ahead log copied into the database on a thread of its own, every
    `every` seconds, instead of by whichever commit finds the log long (SQLite's automatic
    checkpoint).  During a huge submit that commit was often the loop's, held for hundreds of
    milliseconds.  The thread does nothing else, so no periodic work waits behind it, and it
    uses a connection of its own: a PASSIVE checkpoint waits for no reader and no writer."""

    def __init__(self, engine: Engine, every: float = CHECKPOINT_EVERY):
        self.engine, self.path, self.every = engine, engine.url.database, every
        self.stopping = threading.Event()
        self.copied = 0          # log frames found in the database after each round, summed
        event.listen(engine, "connect", _no_autocheckpoint)
        engine.dispose()          # pooled connections made before go; new ones get the pragma
        self.thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self.thread.start()

    def checkpoint(self, conn: sqlite3.Connection) -> int:
        """One PASSIVE checkpoint; how many of the log's frames are in the database after it."""
        _busy, _pages, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(done, 0)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=WRITER_WAIT, check_same_thread=False)
        try:
            while True:
                stopping = self.stopping.wait(self.every)   # a last round on the way out
                try:
                    self.copied += self.checkpoint(conn)
                except sqlite3.Error as exc:      # the next round tries again
                    log.warning("write-ahead log checkpoint failed: %s", exc)
                if stopping:
                    return
        finally:
            conn.close()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.thread.join(timeout)
        event.remove(self.engine, "connect", _no_autocheckpoint)


def _no_autocheckpoint(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


def _ping_when_needed(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _mark_used(_dbapi_conn, record):
        record.info["used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):
        if time.monotonic() - record.info.get("used", 0.0) < PING_IDLE:
            # poll(), not select(): a supervisor holding thousands of worker connections has
            # its database sockets past select()'s 1,024 descriptors.
            try:
                poller = select.poll()
                poller.register(dbapi_conn.fileno(), select.POLLIN)
                said = poller.poll(0)
            except (OSError, ValueError):    # closed already
                said = [True]
            if not said:
                return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"database connection lost: {exc}") from exc


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


_REVISION = re.compile(r"^(down_)?revision\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|None)", re.M)


@functools.lru_cache(maxsize=1)
def _head() -> str | None:
    """The newest revision of the migrations shipped with this program, read off the
    migration files' `revision` and `down_revision` lines (one revision no other follows);
    None when that is not plain, and alembic then decides.  Importing alembic and loading its
    scripts costs a supervisor's start a tenth of a second; the usual start needs neither."""
    revisions, followed = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, single, double in _REVISION.findall(path.read_text()):
            value = single or double
            if down:
                followed.add(value)
            elif value:
                revisions.add(value)
    heads = revisions - followed
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision.  On PostgreSQL an advisory lock keeps several
    supervisors starting at once from migrating concurrently."""
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(977001)"))
        head = _head()
        if head is not None and _stored_revision(conn) == head:
            return      # the usual restart: nothing to run, no migration environment to load
        from alembic import command
        from alembic.config import Config
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class DatabaseInUse(RuntimeError):
    """Another supervisor runs on this SQLite database."""


class SoleSupervisor:
    """On SQLite, one supervisor per database: a lock on a file beside it, held while this
    supervisor runs (the operating system lets go of it when the process ends, however it
    ends).  Two supervisors on one SQLite file would each take the other's hosts for lost;
    several supervisors share a PostgreSQL database instead."""

    def __init__(self, engine: Engine, who: str):
        self.file = None
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            return
        path = Path(database).with_name(Path(database).name + ".supervisor")
        try:
            self.file = lockfile.take(path, who)
        except lockfile.Held as held:
            holder = held.holder or "another process"
            raise DatabaseInUse(
                f"another supervisor runs on this SQLite database ({holder}); SQLite takes one "
                f"supervisor per database: stop that one, or give several supervisors a "
                f"PostgreSQL database (--db postgresql://...)") from None

    def release(self) -> None:
        if self.file is not None:
            self.file.close()          # closing the file lets go of the lock
            self.file = None
