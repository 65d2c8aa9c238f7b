"""Lock schedules with an injected clock, against the real store on both databases."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

import cuefarm
from cuefarm import protocol as p
from cuefarm.config import SupervisorConfig
from supervisor import schedules
from supervisor.server import Supervisor
from supervisor.store import control, hostadmin
from supervisor.store import hosts as host_store
from supervisor.store.engine import make_engine
from supervisor.store.errors import ControlError
from supervisor.store.models import Host
from tests.farm import free_port_block

TZ = "Europe/Paris"


def at(text: str) -> float:
    """Epoch seconds of a local time in the site's timezone."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)).timestamp()


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def sv(db_url):
    clock = Clock(at("2026-11-23T08:00"))          # a Monday
    engine = make_engine(db_url)
    s = Supervisor(SupervisorConfig(timezone=TZ, port=free_port_block()), engine, clock=clock)
    s.start()
    s.bind()
    with engine.begin() as conn:
        host_store.upsert_hosts(conn, [(p.Register(
            name=name, hostname=name, os="linux", cores=8, memory_mb=1000, slots=8,
            version=cuefarm.__version__, tags=tags), "127.0.0.1")
            for name, tags in (("ws-01", ["desktop"]), ("ws-02", ["desktop"]), ("node-01", []))],
            s.id, clock())
    yield s
    s.close()
    engine.dispose()


def locks(sv) -> dict[str, tuple[str, str]]:
    with sv.engine.connect() as conn:
        return {r.name: (r.lock, r.lock_kind)
                for r in conn.execute(Host.__table__.select())}


def test_window_locks_and_unlocks_at_its_edges(sv):
    with sv.engine.begin() as conn:
        hostadmin.add_schedule(conn, p.SetSchedule("tag:desktop", [0, 1, 2, 3, 4], "09:00",
                                                   "19:00"))
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("OPEN", "")
    sv.clock.t = at("2026-11-23T09:00")
    schedules.apply(sv.cx)
    assert locks(sv) == {"ws-01": ("LOCKED", "schedule"), "ws-02": ("LOCKED", "schedule"),
                         "node-01": ("OPEN", "")}
    sv.clock.t = at("2026-11-23T19:00")
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("OPEN", "")
    sv.clock.t = at("2026-11-28T10:00")            # Saturday: no window
    schedules.apply(sv.cx)
    assert locks(sv)["ws-02"] == ("OPEN", "")


def test_manual_unlock_overrides_until_the_next_edge(sv):
    with sv.engine.begin() as conn:
        hostadmin.add_schedule(conn, p.SetSchedule("ws-*", [0], "09:00", "19:00"))
    sv.clock.t = at("2026-11-23T10:00")
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("LOCKED", "schedule")
    with sv.engine.begin() as conn:
        control.lock_hosts(conn, ["ws-01"], False, False, None,
                           lambda ids: schedules.override_until(sv.cx, conn, ids), control.Outcome())
    sv.clock.t = at("2026-11-23T12:00")
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("OPEN", "")       # the artist's manual unlock holds ...
    sv.clock.t = at("2026-11-30T09:30")              # ... past 19:00, until next Monday 09:00
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("LOCKED", "schedule")


def test_window_past_midnight():
    w = {"days": [4], "start": "22:00", "end": "06:00"}
    friday_night = datetime(2026, 11, 27, 23, 0)
    saturday_early = datetime(2026, 11, 28, 5, 59)
    saturday_late = datetime(2026, 11, 28, 6, 0)
    assert schedules.active(w, friday_night) and schedules.active(w, saturday_early)
    assert not schedules.active(w, saturday_late)
    assert schedules.next_edge([w], friday_night) == datetime(2026, 11, 28, 6, 0)


@pytest.mark.parametrize("bad,field", [
    (p.SetSchedule("ws-*", [7], "09:00", "19:00"), "days"),
    (p.SetSchedule("ws-*", [], "09:00", "19:00"), "days"),
    (p.SetSchedule("ws-*", [0], "25:00", "19:00"), "start"),
    (p.SetSchedule("ws-*", [0], "09:00", "9pm"), "end"),
    (p.SetSchedule("ws-*", [0], "09:00", "09:00"), "end"),
    (p.SetSchedule("tag:bad tag", [0], "09:00", "10:00"), "target"),
])
def test_malformed_schedules_are_refused(sv, bad, field):
    with pytest.raises(ControlError) as info:
        with sv.engine.begin() as conn:
            hostadmin.add_schedule(conn, bad)
    assert info.value.field == field
    with sv.engine.connect() as conn:
        assert hostadmin.schedule_rows(conn) == []


def manual(sv, names, lock, slots=None):
    with sv.engine.begin() as conn:
        control.lock_hosts(conn, names, lock, False, slots,
                           lambda ids: schedules.override_until(sv.cx, conn, ids), control.Outcome())


def test_manual_lock_in_a_window_holds_until_its_end_then_the_schedule_applies(sv):
    with sv.engine.begin() as conn:
        hostadmin.add_schedule(conn, p.SetSchedule("ws-*", [0], "09:00", "19:00"))
    sv.clock.t = at("2026-11-23T10:00")
    schedules.apply(sv.cx)
    manual(sv, ["ws-01"], True, slots=2)           # an admin's partial lock mid-window
    sv.clock.t = at("2026-11-23T18:59")
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("LOCKED", "manual")
    sv.clock.t = at("2026-11-23T19:00")            # the next edge: the schedule says open
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("OPEN", "")
    assert locks(sv)["ws-02"] == ("OPEN", "")
    sv.clock.t = at("2026-11-30T09:00")            # and governs the following window as usual
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("LOCKED", "schedule")


def test_manual_lock_before_a_window_becomes_the_schedules_at_its_start(sv):
    with sv.engine.begin() as conn:
        hostadmin.add_schedule(conn, p.SetSchedule("ws-*", [0], "09:00", "19:00"))
    sv.clock.t = at("2026-11-23T07:00")
    manual(sv, ["ws-01"], True)
    sv.clock.t = at("2026-11-23T08:59")
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("LOCKED", "manual")
    sv.clock.t = at("2026-11-23T09:01")
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("LOCKED", "schedule")
    sv.clock.t = at("2026-11-23T19:01")
    schedules.apply(sv.cx)
    assert locks(sv)["ws-01"] == ("OPEN", "")


def test_manual_lock_of_a_host_no_schedule_covers_stays(sv):
    with sv.engine.begin() as conn:
        hostadmin.add_schedule(conn, p.SetSchedule("ws-*", [0], "09:00", "19:00"))
    sv.clock.t = at("2026-11-23T10:00")
    manual(sv, ["node-01"], True)
    for t in ("2026-11-23T19:00", "2026-11-30T09:00", "2026-11-30T19:30"):
        sv.clock.t = at(t)
        schedules.apply(sv.cx)
        assert locks(sv)["node-01"] == ("LOCKED", "manual"), t


def test_a_ban_is_not_a_lock_schedules_undo(sv):
    with sv.engine.begin() as conn:
        hostadmin.add_schedule(conn, p.SetSchedule("ws-*", [0], "09:00", "19:00"))
        hostadmin.admission_control(conn, "ban", ["ws-02"], "", sv.clock())
    for t in ("2026-11-23T10:00", "2026-11-23T19:30"):
        sv.clock.t = at(t)
        schedules.apply(sv.cx)
        assert locks(sv)["ws-02"] == ("LOCKED", "banned"), t
