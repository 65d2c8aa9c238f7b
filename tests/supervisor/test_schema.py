"""The migrated schema on SQLite and PostgreSQL: the indexes the hot path relies on."""

from __future__ import annotations

from sqlalchemy import inspect, text

from supervisor.store.engine import make_engine, migrate


def migrated_indexes(db_url: str, table: str) -> tuple[dict, dict[str, str]]:
    """(name -> inspected index, name -> its SQL definition) for `table`, freshly migrated."""
    engine = make_engine(db_url)
    try:
        migrate(engine)
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes(table)}
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                defs = dict(conn.execute(text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"),
                    {"t": table}).all())
            else:
                defs = dict(conn.execute(text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                    " AND tbl_name = :t AND sql IS NOT NULL"), {"t": table}).all())
    finally:
        engine.dispose()
    return indexes, defs


def test_running_attempts_are_indexed_by_host_and_by_layer(db_url):
    indexes, defs = migrated_indexes(db_url, "attempt")
    assert indexes["ix_attempt_running_layer"]["column_names"] == ["layer_id", "host_id"]
    assert indexes["ix_attempt_running_host"]["column_names"] == ["host_id"]
    # Partial: over the attempts running now, not the years of finished ones.
    for name in ("ix_attempt_running_layer", "ix_attempt_running_host"):
        assert "WHERE" in defs[name].upper() and "RUNNING" in defs[name], defs[name]


def test_busy_layers_are_indexed(db_url):
    """Slot and limit counts read the layers with frames running, not every layer ever run."""
    indexes, defs = migrated_indexes(db_url, "layer")
    assert indexes["ix_layer_busy"]["column_names"] == ["job_id"]
    sql = defs["ix_layer_busy"]
    assert "WHERE" in sql.upper() and "running > 0" in sql, sql
