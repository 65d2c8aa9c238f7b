"""Migrations from a database holding data, on SQLite and PostgreSQL: 0003 (money as
micro-dollars) and 0020 (a host's megabytes in 64 bits)."""

from __future__ import annotations

from decimal import Decimal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from supervisor import metering
from supervisor.licensing import Licensing
from supervisor.store.billing_models import LicenceTerms, OverageBatch, OverageMinute
from supervisor.store.engine import MIGRATIONS, make_engine, migrate
from cuefarm.config import SupervisorConfig

Q = 1_750_000_000 // 900 * 900


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def upgrade_to(engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_0003_converts_float_money_without_losing_values(db_url):
    engine = make_engine(db_url)
    try:
        upgrade_to(engine, "0002")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO licence_terms (id, installed_set, installed, metered, sink, rate, "
                "revoked, revoked_at, revoked_reason, updated_at) VALUES "
                "(1, true, 3, true, '/tmp/sink', 0.35, false, NULL, '', 1.0)"))
            conn.execute(text(
                "INSERT INTO overage_minute (minute, workers, busy, installed, rate, batch_id) "
                "VALUES (:m, 1, 4, 3, 0.1, :b)"),
                [{"m": Q + 60 * i, "b": "b1" if i < 15 else None} for i in range(600)])
            conn.execute(text(
                "INSERT INTO overage_batch (id, created_at, period_start, period_end, "
                "worker_minutes, cost, payload, state, tries, last_error, accepted_at) VALUES "
                "('b1', 1.0, :q, :e, 15, 0.025, '{\"cost\": 0.025}', 'pending', 2, '', NULL)"),
                {"q": Q, "e": Q + 900})
        migrate(engine)
        with engine.begin() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            terms = conn.execute(select(LicenceTerms)).one()
            rates = set(conn.execute(select(OverageMinute.rate_micros)).scalars())
            batch = conn.execute(select(OverageBatch)).one()
            totals = metering.month_totals(conn, Q, Q + 600 * 60)
            lic = Licensing(SupervisorConfig())
            loaded = lic.load(conn)
            # The converted columns are usable: a new minute and batch are written.
            metering.record_minutes(conn, [(Q + 600 * 60, 5, True)], 3, Decimal("0.35"))
            ids = metering.make_batches(conn, Q + 700 * 60, "site", "sv")
            new = conn.execute(select(OverageBatch).where(
                OverageBatch.period_start == Q + 600 * 60)).one()
            cols = {c for c in conn.execute(select(OverageMinute).limit(1)).keys()}
        assert version == head_revision()
        assert terms.rate_micros == 350_000 and loaded.rate == Decimal("0.35")
        assert (loaded.installed, loaded.metered) == (3, True)
        assert rates == {100_000}
        assert (batch.cost_micros, batch.tries, batch.payload) == (25_000, 2, {"cost": 0.025})
        assert totals == (600, Decimal("1.000000"))          # was 1.0000000000000095 as floats
        assert len(ids) == 40 - 1 + 1 and new.id in ids     # 39 old quarters, 1 new
        assert new.cost_micros == 11_667 and new.payload["cost"] == "0.011667"
        assert "rate" not in cols and "rate_micros" in cols
    finally:
        engine.dispose()


def test_the_head_read_off_the_migration_files_is_alembics(db_url):
    from supervisor.store import engine as store_engine
    assert store_engine._head() == head_revision()
    engine = make_engine(db_url)
    try:
        upgrade_to(engine, "0018")           # one behind: migrate still runs the last one
        migrate(engine)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == \
                head_revision()
    finally:
        engine.dispose()


def test_a_supervisor_start_on_a_current_database_loads_no_alembic(tmp_path):
    import subprocess
    import sys
    db = f"sqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(db)
    migrate(engine)
    engine.dispose()
    code = ("import sys; from supervisor.store.engine import make_engine, migrate; "
            f"migrate(make_engine({db!r})); print('alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_0020_keeps_a_hosts_figures_and_takes_petabytes_after(db_url):
    from supervisor.store.hosts import write_figures
    from supervisor.store.models import Host
    engine = make_engine(db_url)
    try:
        upgrade_to(engine, "0019")
        with engine.begin() as conn:
            conn.execute(Host.__table__.insert().values(
                name="w1", hostname="w1", os="linux", cores=8, memory_mb=64_000,
                memory_free_mb=60_000, disk_free_mb=2**31 - 1, slots_configured=8, state="UP",
                last_seen=1.0, registered_at=1.0))
        migrate(engine)
        with engine.begin() as conn:
            kept = conn.execute(select(Host.memory_mb, Host.memory_free_mb,
                                       Host.disk_free_mb)).one()
            hid = conn.execute(select(Host.id)).scalar()
            write_figures(conn, [{"hid": hid, "seen": 2.0, "load": 0.5, "cpu": 1.0,
                                  "free": 60_000, "disk": 5 * 2**30, "nimby": False,
                                  "draining": False}])
            disk = conn.execute(select(Host.disk_free_mb)).scalar()
        assert tuple(kept) == (64_000, 60_000, 2**31 - 1)
        assert disk == 5 * 2**30
    finally:
        engine.dispose()
