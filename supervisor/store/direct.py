"""The dispatch pass's own statements, run on SQLite straight on the transaction's DBAPI cursor.

A pass runs about ten small statements, each built once (module constants in `work` and
`counters`).  For these, SQLAlchemy's work per execution (the cache key of the statement,
parameter processing, the result's wrapping) costs several times what SQLite itself spends:
measured, 78 µs against 6 µs for a two-key SELECT.  `execute` compiles each of its reads
once and then hands SQLite the SQL string and a tuple: same statements, same transaction,
same results, without that work.  `many_rows` writes many rows in one statement.

Only where it is safe: SQLite, in a transaction already begun; parameters and columns go
through their types' conversions as SQLAlchemy's own execution would.  Anything else (an
empty IN list, SQL only known with its values) goes through `conn.execute` as usual; so
does PostgreSQL, whose hot path has its own array statements.  Errors are raised as
SQLAlchemy's, as `conn.execute` raises them.

On PostgreSQL, `execute` prepares each statement on the server once per connection (PREPARE)
and then runs it by name (EXECUTE): a pass's statements are planned once instead of each
time, which was a fifth of what the server spent on them.  `render` gives the same call as
text, for statements sent ahead of others in one round trip.  Prepared statements belong to a
session: behind a connection pooler, it must pool by session, not by transaction.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import namedtuple
from keyword import iskeyword
from typing import Any, Callable, NoReturn

from sqlalchemy import Connection, exc
from sqlalchemy.sql import ClauseElement


class _Plan:
    """One statement compiled for SQLite: its SQL, the order of its parameters, how its rows
    are made (a named tuple with each column's conversion, if any)."""

    __slots__ = ("sql", "names", "procs", "defaults", "expanding", "row", "convert", "usable")

    def __init__(self, stmt: ClauseElement, conn: Connection):
        compiled = stmt.compile(dialect=conn.dialect)
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults = compiled.params        # the statement's own values (WHERE x = 'y')
        binds = compiled.binds
        self.expanding = {name for name in self.names if binds[name].expanding}
        # Each parameter's conversion by its type, if it has one (a float column's to_float).
        dialect = conn.dialect
        self.procs = [binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                      for name in self.names]
        if not any(self.procs):
            self.procs = None
        self.usable = len(self.expanding) <= 1
        rest = self.sql
        for name in self.expanding:
            rest = rest.replace(f"__[POSTCOMPILE_{name}]", "")
        if "POSTCOMPILE" in rest:
            self.usable = False
        self.row = None
        self.convert: list[tuple[int, Callable[[Any], Any]]] = []
        columns = getattr(stmt, "selected_columns", None)
        if columns is not None and getattr(stmt, "is_select", False):
            keys = [c.key for c in columns]
            # Rows named as SQLAlchemy names them: a column without a name of its own (an
            # unlabelled sum) or a name twice takes the usual path.
            if len(set(keys)) < len(keys) or not all(
                    isinstance(k, str) and k.isidentifier() and not iskeyword(k)
                    and not k.startswith("_")
                    for k in keys):
                self.usable = False
                keys = [f"c{i}" for i in range(len(keys))]
            self.row = namedtuple("Row", keys)
            for i, c in enumerate(columns):
                proc = c.type.dialect_impl(dialect).result_processor(dialect, None)
                if proc is not None:
                    self.convert.append((i, proc))
        else:
            self.usable = False         # reads only: writes go through many_rows()

    def args(self, params: dict[str, Any]) -> tuple[str, tuple]:
        defaults = self.defaults
        values = [params[n] if n in params else defaults[n] for n in self.names]
        if self.procs is not None:
            values = [v if proc is None or v is None else proc(v)
                      for v, proc in zip(values, self.procs)]
        if not self.expanding:
            return self.sql, tuple(values)
        out: list[Any] = []
        sql = self.sql
        for n, v in zip(self.names, values):
            if n in self.expanding:
                v = list(v)
                if not v:
                    raise _Empty()
                sql = sql.replace(f"__[POSTCOMPILE_{n}]", ", ".join("?" * len(v)))
                out.extend(v)
            else:
                out.append(v)
        return sql, tuple(out)

    def rows(self, cursor) -> list:
        return _made(cursor, self.row._make, self.convert)


def _usual(conn: Connection, stmt: ClauseElement, params: dict[str, Any] | None) -> list:
    """The statement through SQLAlchemy's own execution: its rows (none for a write)."""
    result = conn.execute(stmt, params)
    return result.all() if result.returns_rows else []


def _made(cursor, make: Callable, convert: list[tuple[int, Callable[[Any], Any]]]) -> list:
    """The cursor's rows made by `make`, each column in `convert` converted first."""
    if not convert:
        return [make(r) for r in cursor.fetchall()]
    out = []
    for r in cursor.fetchall():
        r = list(r)
        for i, proc in convert:
            r[i] = proc(r[i])
        out.append(make(r))
    return out


class _Empty(Exception):
    """An expanding IN with no values: SQLAlchemy renders that specially; let it."""


_plans: dict[int, tuple[ClauseElement, _Plan]] = {}

# PostgreSQL: where a pooled connection notes the statements prepared on it (its `info` lasts
# as long as the DBAPI connection and is emptied when that is replaced).
PREPARED = "cuefarm_prepared"
# invalid_sql_statement_name; feature_not_supported ("cached plan must not change result type")
_STALE = {"26000", "0A000"}
_PARAM = re.compile(r"%\((\w+)\)s")
_names = itertools.count(1)


class _PgPlan:
    """One statement as PostgreSQL prepares it: `PREPARE name AS ...` with $1.. for its
    parameters, and `EXECUTE name(%s, ...)` with their values in order."""

    __slots__ = ("name", "body", "call", "names", "defaults", "procs", "row", "convert",
                 "usable")

    def __init__(self, stmt: ClauseElement, conn: Connection):
        compiled = stmt.compile(dialect=conn.dialect)
        sql: str = compiled.string
        self.usable = "POSTCOMPILE" not in sql      # an expanding IN: its shape varies
        order: list[str] = []

        def number(m: re.Match) -> str:
            if m.group(1) not in order:
                order.append(m.group(1))
            return f"${order.index(m.group(1)) + 1}"

        self.name = f"cuefarm_{next(_names)}"
        self.body = _PARAM.sub(number, sql).replace("%%", "%")
        self.names = tuple(order)
        self.call = (f"EXECUTE {self.name}({', '.join(['%s'] * len(order))})" if order
                     else f"EXECUTE {self.name}")
        self.defaults = compiled.params
        dialect = conn.dialect
        binds = compiled.binds
        self.procs = [binds[n].type.dialect_impl(dialect).bind_processor(dialect)
                      if n in binds else None for n in order]
        if not any(self.procs):
            self.procs = None
        self.row = None
        self.convert: list[tuple[int, Callable[[Any], Any]]] = []
        columns = getattr(stmt, "selected_columns", None)
        if columns is not None and getattr(stmt, "is_select", False):
            for i, c in enumerate(columns):
                proc = c.type.dialect_impl(dialect).result_processor(dialect, None)
                if proc is not None:
                    self.convert.append((i, proc))

    def args(self, params: dict[str, Any]) -> tuple:
        defaults = self.defaults
        values = [params[n] if n in params else defaults[n] for n in self.names]
        if self.procs is not None:
            values = [v if proc is None or v is None else proc(v)
                      for v, proc in zip(values, self.procs)]
        return tuple(values)

    def rows(self, cursor) -> list:
        if cursor.description is None:
            return []
        if self.row is None:
            keys = [d[0] for d in cursor.description]
            self.row = namedtuple("Row", keys, rename=True)
        return _made(cursor, self.row._make, self.convert)


_pg_plans: dict[int, tuple[ClauseElement, _PgPlan]] = {}


def _pg_plan(conn: Connection, stmt: ClauseElement) -> _PgPlan:
    entry = _pg_plans.get(id(stmt))
    if entry is None or entry[0] is not stmt:
        if len(_pg_plans) > 256:    # meant for module constants; anything else is not kept
            _pg_plans.clear()
        entry = _pg_plans[id(stmt)] = (stmt, _PgPlan(stmt, conn))
    return entry[1]


def _prepared(conn: Connection, plan: _PgPlan, cursor) -> None:
    """Make sure `plan` is prepared on this connection (one round trip the first time)."""
    done = conn.connection.info.get(PREPARED)
    if done is None:        # a new connection, or one whose statements went wrong
        if PREPARED in conn.connection.info:
            _cursor_execute(conn, cursor, "DEALLOCATE ALL", None)
        done = conn.connection.info[PREPARED] = set()
    if plan.name not in done:
        _cursor_execute(conn, cursor, f"PREPARE {plan.name} AS {plan.body}", None)
        done.add(plan.name)


def _cursor_execute(conn: Connection, cursor, sql: str, args: tuple | None) -> None:
    """cursor.execute, seen by the engine's cursor listeners as SQLAlchemy's own execution
    shows them a statement (without an execution context: they are given None)."""
    if not (conn._has_events or conn.engine._has_events):
        cursor.execute(sql, args)       # args None: the text is sent as it is
        return
    for fn in conn.dispatch.before_cursor_execute:
        sql, args = fn(conn, cursor, sql, args, None, False)
    cursor.execute(sql, args)
    for fn in conn.dispatch.after_cursor_execute:
        fn(conn, cursor, sql, args, None, False)


def _raise(conn: Connection, e: Exception, sql: str, args: tuple | None, cursor) -> NoReturn:
    """Raise a driver error as SQLAlchemy's execution does, with its handling of a lost
    connection (the connection, and the pool's older ones, are replaced)."""
    # No such prepared statement (the session lost them), or one whose rows changed shape
    # (the schema changed under it): this connection's are dropped and made anew.
    if getattr(e, "pgcode", None) in _STALE and PREPARED in conn.connection.info:
        conn.connection.info[PREPARED] = None
    conn._handle_dbapi_exception(e, sql, args, cursor, None)
    raise e     # not reached: the call above raises


def _pg_execute(conn: Connection, stmt: ClauseElement, params: dict[str, Any] | None) -> list:
    plan = _pg_plan(conn, stmt)
    if not plan.usable:
        return _usual(conn, stmt, params)
    args = plan.args(params or {})
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        _prepared(conn, plan, cursor)
        _cursor_execute(conn, cursor, plan.call, args)
        return plan.rows(cursor)
    except conn.dialect.loaded_dbapi.Error as e:
        _raise(conn, e, plan.call, args, cursor)
    finally:
        cursor.close()


def render(conn: Connection, stmt: ClauseElement, params: dict[str, Any]) -> str:
    """PostgreSQL: `stmt` with `params` as one statement of text, to go ahead of others in
    one round trip: EXECUTE of the prepared statement (prepared now if this connection has
    not got it yet), its values inlined as the driver quotes them.  A statement of one shape
    only (no expanding IN)."""
    plan = _pg_plan(conn, stmt)
    if not plan.usable:
        raise ValueError("a statement with an expanding IN cannot be sent ahead")
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor()
    try:
        _prepared(conn, plan, cursor)
        return cursor.mogrify(plan.call, plan.args(params)).decode(_encoding(dbapi))
    except conn.dialect.loaded_dbapi.Error as e:
        _raise(conn, e, plan.call, None, cursor)
    finally:
        cursor.close()


_rows: dict[tuple[str, ...], type] = {}     # a row type per list of column names (a handful)


def run(conn: Connection, sql: str) -> list:
    """PostgreSQL: a query string of one or more statements (`render`'s, joined by ";"),
    sent as it is in one round trip: the rows of its last statement, named tuples."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        _cursor_execute(conn, cursor, sql, None)
        if cursor.description is None:
            return []
        keys = tuple(d[0] for d in cursor.description)
        row = _rows.get(keys)
        if row is None:
            row = _rows[keys] = namedtuple("Row", keys, rename=True)
        return [row._make(r) for r in cursor.fetchall()]
    except conn.dialect.loaded_dbapi.Error as e:
        _raise(conn, e, sql, None, cursor)
    finally:
        cursor.close()


def _encoding(dbapi_conn) -> str:
    from psycopg2.extensions import encodings   # here: a SQLite-only installation has none
    return encodings[dbapi_conn.encoding]


def execute(conn: Connection, stmt: ClauseElement,
            params: dict[str, Any] | None = None) -> list:
    """Run one of the hot path's prebuilt statements in `conn`'s transaction: its rows (named
    tuples, as `Result.all()` gives them).  SQLite: SELECTs only."""
    if not conn.in_transaction():
        return _usual(conn, stmt, params)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        return _pg_execute(conn, stmt, params)
    if conn.dialect.name != "sqlite":
        return _usual(conn, stmt, params)
    entry = _plans.get(id(stmt))
    if entry is None or entry[0] is not stmt:
        if len(_plans) > 256:       # meant for module constants; anything else is not kept
            _plans.clear()
        entry = _plans[id(stmt)] = (stmt, _Plan(stmt, conn))
    plan = entry[1]
    if not plan.usable:
        return _usual(conn, stmt, params)
    try:
        sql, args = plan.args(params or {})
    except _Empty:
        return _usual(conn, stmt, params)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, args)
        return plan.rows(cursor)
    except conn.dialect.loaded_dbapi.Error as e:
        raise exc.DBAPIError.instance(sql, args, e, conn.dialect.loaded_dbapi.Error,
                                      dialect=conn.dialect) from e
    finally:
        cursor.close()


# UPDATE ... FROM came with SQLite 3.33, the higher limit on parameters with 3.32.
MANY_ROWS = sqlite3.sqlite_version_info >= (3, 33, 0)
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def can_many(conn: Connection) -> bool:
    """Whether many_rows() serves `conn` (SQLite new enough, in a transaction)."""
    return MANY_ROWS and conn.dialect.name == "sqlite" and conn.in_transaction()


def many_rows(conn: Connection, sql: str, rows: list[tuple]) -> None:
    """SQLite: write many rows with one statement: `sql` holds `{values}` where the rows go
    as a VALUES list, in chunks within SQLite's limit on parameters.  An executemany steps
    SQLite once per row, giving the GIL away and taking it back each time: with another
    thread busy in Python, every row waits its turn (a 200-row write took 100 ms so while a
    huge job was stored).  Here it is once per chunk.  Needs MANY_ROWS for an UPDATE."""
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ", ".join("?" * width) + ")"
    per = max(1, _MAX_PARAMS // width)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        for o in range(0, len(rows), per):
            chunk = rows[o:o + per]
            text = sql.format(values=", ".join([one] * len(chunk)))
            args = tuple(itertools.chain.from_iterable(chunk))
            try:
                cursor.execute(text, args)
            except sqlite3.Error as e:
                raise exc.DBAPIError.instance(text, args, e, sqlite3.Error,
                                              dialect=conn.dialect) from e
    finally:
        cursor.close()

