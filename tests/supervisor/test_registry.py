"""The registry's workers with room: kept up to date by the changes themselves, so a pass
looks at the workers that changed, not the whole farm.  Checked against the plain rule over
every worker after random changes of every kind."""

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.registry import Registry, Worker


def with_room(reg: Registry, now: float) -> list[int]:
    """The rule, worker by worker."""
    return [w.host_id for w in sorted(reg.by_id.values(), key=lambda w: w.host_id)
            if w.identity is not None and w.refuse_until <= now and w.free > 0]


HOSTS = st.integers(0, 2)
CHANGES = st.one_of(
    st.tuples(st.just("connect"), HOSTS),
    st.tuples(st.just("disconnect"), HOSTS),
    st.tuples(st.just("forget"), HOSTS),
    st.tuples(st.just("slots"), HOSTS, st.integers(0, 4)),
    st.tuples(st.just("lock"), HOSTS, st.booleans(), st.one_of(st.none(), st.integers(0, 3))),
    st.tuples(st.sampled_from(["nimby", "draining", "banned"]), HOSTS, st.booleans()),
    st.tuples(st.just("add"), HOSTS, st.integers(1, 3)),
    st.tuples(st.just("remove"), HOSTS),
    st.tuples(st.just("clear"), HOSTS),
    st.tuples(st.just("refuse"), HOSTS, st.floats(0, 20)),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(CHANGES, st.booleans(), st.floats(0, 20)), max_size=60))
def test_workers_with_room_follow_every_change(steps):
    reg = Registry()
    counter = 0
    for change, look, now in steps:
        kind, hid = change[0], change[1]
        w = reg.get_or_add(hid, f"h{hid}")
        if kind == "connect":
            reg.connect(w, f"id{hid}".encode(), 0.0)
        elif kind == "disconnect":
            reg.disconnect(w, 0.0)
        elif kind == "forget":
            reg.forget(w)
        elif kind == "slots":
            w.slots = change[2]
        elif kind == "lock":
            w.locked, w.lock_slots = change[2], change[3]
        elif kind in ("nimby", "draining", "banned"):
            setattr(w, kind, change[2])
        elif kind == "add":
            counter += 1
            w.add(f"{counter}.1", change[2])
        elif kind == "remove" and w.running:
            w.remove(next(iter(w.running)))
        elif kind == "clear":
            w.clear()
        elif kind == "refuse":
            w.refuse_until = change[2]
        if look:        # a pass now and then, as the loop makes them
            assert [w.host_id for w in reg.dispatchable(now)] == with_room(reg, now)
    for now in (0.0, 25.0):
        assert [w.host_id for w in reg.dispatchable(now)] == with_room(reg, now)


def test_a_worker_taken_out_and_put_back_has_its_room_again():
    reg = Registry()
    w = reg.get_or_add(1, "a")
    reg.connect(w, b"a", 0.0)
    w.slots = 2
    w.add("10.1", 2)
    assert reg.dispatchable(0.0) == []
    kept = w.take_out("10.1")
    assert reg.dispatchable(0.0) == [w]
    w.put_back("10.1", kept)
    assert reg.dispatchable(0.0) == []


def test_workers_outside_a_registry_are_not_tracked():
    w = Worker(5, "loose", slots=2)
    w.used = 1          # no registry to tell: nothing breaks
    assert w.free == 1
