"""The supervisor's background threads and loop stopwatch (real ZeroMQ inproc sockets)."""

from __future__ import annotations

import logging
import threading

import zmq

from supervisor.background import Background
from supervisor.loop import SLOW_TURN, Stopwatch


def _wait_results(bg: Background, count: int, timeout_ms: int = 5000) -> list:
    """Poll the wake socket as the loop does until `count` results are in."""
    poller = zmq.Poller()
    poller.register(bg.wake, zmq.POLLIN)
    out: list = []
    while len(out) < count:
        assert poller.poll(timeout_ms), f"woken for {len(out)} of {count} results only"
        out += bg.collect()
    return out


def test_results_come_back_in_order_on_the_loop_thread_with_a_wake_up():
    bg = Background(zmq.Context.instance(), "test-order")
    try:
        ran_on: list[str] = []

        def work(n):
            ran_on.append(threading.current_thread().name)
            return n * n
        for n in range(5):
            assert bg.submit(("square", n), lambda n=n: work(n))
        results = _wait_results(bg, 5)
        assert [(key, result, error) for key, result, error in results] == \
            [(("square", n), n * n, None) for n in range(5)]
        assert set(ran_on) == {"background-test-order"}
        assert not any(bg.busy(("square", n)) for n in range(5))
    finally:
        bg.close()


def test_collecting_with_what_the_poll_found_skips_only_when_nothing_is_there():
    """The loop hands collect() what its poll found readable: a result kept is collected
    whatever the poll said; a wake-up that comes after its result was taken is read once the
    poll shows it, so the poller does not keep finding it."""
    ctx = zmq.Context.instance()
    bg = Background(ctx, "test-ready")
    poller = zmq.Poller()
    poller.register(bg.wake, zmq.POLLIN)
    late = ctx.socket(zmq.PUSH)          # a wake-up arriving late, as the thread sends them
    late.setsockopt(zmq.LINGER, 0)
    late.connect(bg.address)
    try:
        assert bg.collect({}) == []                      # nothing run: nothing asked
        assert bg.submit("one", lambda: 1)
        assert poller.poll(5000)
        assert bg.collect({}) == [("one", 1, None)]      # kept: collected, poll or not
        assert poller.poll(0) == []                      # its wake-up read with it
        late.send(b"")
        ready = dict(poller.poll(5000))
        assert bg.wake in ready
        assert bg.collect({}) == []                      # the poll not handed over: left
        assert bg.wake in dict(poller.poll(0))           # so the next poll finds it again
        assert bg.collect(ready) == []                   # read now
        assert poller.poll(0) == []                      # and gone
    finally:
        late.close()
        bg.close()


def test_a_key_in_flight_is_not_queued_twice_and_errors_are_handed_back():
    bg = Background(zmq.Context.instance(), "test-busy")
    release = threading.Event()
    try:
        assert bg.submit("pass", lambda: release.wait(5) and "done")
        assert bg.busy("pass")
        assert not bg.submit("pass", lambda: "second")      # still running: skipped
        assert bg.submit("broken", lambda: 1 / 0)
        release.set()
        results = _wait_results(bg, 2)
        assert results[0] == ("pass", "done", None)
        key, result, error = results[1]
        assert key == "broken" and result is None and isinstance(error, ZeroDivisionError)
        assert bg.submit("pass", lambda: "again")           # finished: may run again
        assert _wait_results(bg, 1) == [("pass", "again", None)]
    finally:
        bg.close()


def test_stopwatch_names_the_slow_step_and_keeps_the_longest_turn(caplog):
    now = [0.0]
    sw = Stopwatch(clock=lambda: now[0])
    sw.start_turn()
    now[0] += 0.002
    sw.lap("worker messages")
    now[0] += SLOW_TURN + 0.05
    sw.lap("dispatch")
    with caplog.at_level(logging.WARNING, logger="supervisor.server"):
        sw.end_turn()
    assert "dispatch 150 ms" in caplog.text and "worker messages 2 ms" in caplog.text
    sw.start_turn()
    now[0] += 0.001
    sw.lap("events")
    sw.end_turn()                       # a fast turn: not logged, not the longest
    assert caplog.text.count("a loop turn took") == 1
    assert abs(sw.take_longest() - (SLOW_TURN + 0.052)) < 1e-9
    assert sw.take_longest() == 0.0     # taken: starts again


def test_a_slow_turn_says_how_long_its_commits_and_its_cpu_took(caplog):
    now = [0.0]
    sw = Stopwatch(clock=lambda: now[0])
    sw.start_turn()
    sw.note_commit(0.120)                 # the loop's own commit: counted
    elsewhere = threading.Thread(target=sw.note_commit, args=(5.0,))
    elsewhere.start()                     # another thread's: not this turn's
    elsewhere.join()
    now[0] += SLOW_TURN + 0.05
    sw.lap("completions and dispatch")
    with caplog.at_level(logging.WARNING, logger="supervisor.loop"):
        sw.end_turn()
    assert "commits 120 ms" in caplog.text
    assert "on a CPU " in caplog.text
    sw.start_turn()                       # counted per turn
    assert sw.committing == 0.0
