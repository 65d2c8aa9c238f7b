"""The frame state machine, tested as a table over every (state, event) pair."""

from __future__ import annotations

import itertools

import pytest

from cuefarm.states import (COMPLETE_STATES, DONE_STATES, Event, FrameState, IllegalTransition,
                            next_state, sources)

# Written out here, independently of cuefarm.states.TRANSITIONS: one row per state, one column per
# event, "-" where the event is illegal in that state.
EVENTS = ["dispatch", "succeed", "fail_retry", "fail_final", "requeue", "kill_eat",
          "deps_met", "deps_reset", "retry", "eat"]
TABLE = """
state      dispatch  succeed    fail_retry  fail_final  requeue  kill_eat  deps_met  deps_reset  retry    eat
WAITING    RUNNING   -          -           -           -        -         -         DEPEND      -        EATEN
DEPEND     -         -          -           -           -        -         WAITING   -           -        EATEN
RUNNING    -         SUCCEEDED  WAITING     DEAD        WAITING  EATEN     -         -           -        -
SUCCEEDED  -         -          -           -           -        -         -         -           WAITING  -
DEAD       -         -          -           -           -        -         -         -           WAITING  EATEN
EATEN      -         -          -           -           -        -         -         -           WAITING  -
"""


def _expected() -> dict[tuple[str, str], str | None]:
    lines = [line.split() for line in TABLE.strip().splitlines()]
    header, rows = lines[0][1:], lines[1:]
    assert header == EVENTS
    table = {}
    for state, *cells in rows:
        assert len(cells) == len(EVENTS)
        for event, cell in zip(EVENTS, cells):
            table[(state, event)] = None if cell == "-" else cell
    return table


EXPECTED = _expected()


def test_table_covers_every_state_and_event():
    assert {s for s, _ in EXPECTED} == {s.value for s in FrameState}
    assert set(EVENTS) == {e.value for e in Event}


@pytest.mark.parametrize("state,event", list(itertools.product(FrameState, Event)),
                         ids=lambda v: v.value)
def test_transition(state, event):
    expected = EXPECTED[(state.value, event.value)]
    if expected is None:
        with pytest.raises(IllegalTransition):
            next_state(state, event)
    else:
        assert next_state(state, event) is FrameState(expected)


def test_strings_are_accepted():
    assert next_state("WAITING", "dispatch") is FrameState.RUNNING
    with pytest.raises(IllegalTransition, match="SUCCEEDED frame cannot dispatch"):
        next_state("SUCCEEDED", "dispatch")


@pytest.mark.parametrize("state,event", [("BOGUS", "dispatch"), ("WAITING", "bogus"),
                                         ("waiting", "dispatch")])
def test_unknown_names_are_value_errors(state, event):
    with pytest.raises(ValueError):
        next_state(state, event)


@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.value)
def test_sources_match_the_table(event):
    expected = {s for (s, e), new in EXPECTED.items() if e == event.value and new is not None}
    assert {s.value for s in sources(event)} == expected


def test_state_groups():
    assert {s.value for s in DONE_STATES} == {"SUCCEEDED", "DEAD", "EATEN"}
    assert {s.value for s in COMPLETE_STATES} == {"SUCCEEDED", "EATEN"}
    # States are plain strings on the wire and in the database.
    assert FrameState.RUNNING == "RUNNING" and Event.EAT == "eat"
