"""States of frames, attempts, jobs and hosts, and the frame state machine.

States are string enums so they read the same in the database, on the wire and in logs.
"""

from __future__ import annotations

from enum import Enum


class FrameState(str, Enum):
    WAITING = "WAITING"
    DEPEND = "DEPEND"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    DEAD = "DEAD"
    EATEN = "EATEN"


class AttemptState(str, Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"      # the frame's own fault: spends a retry
    LOST = "LOST"          # host lost, launch refused, host purged: not the frame's fault
    KILLED = "KILLED"      # killed on request (kill job, kill frame)


class JobState(str, Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"


class HostState(str, Enum):
    UP = "UP"
    DOWN = "DOWN"


class LockState(str, Enum):
    OPEN = "OPEN"
    LOCKED = "LOCKED"


class Event(str, Enum):
    """What happens to a frame; the keys of the transition table."""

    DISPATCH = "dispatch"          # claimed for a host
    SUCCEED = "succeed"            # process exited 0
    FAIL_RETRY = "fail_retry"      # process failed, retries left
    FAIL_FINAL = "fail_final"      # process failed, no retries left
    REQUEUE = "requeue"            # not the frame's fault (host lost, refused, purged)
    KILL_EAT = "kill_eat"          # running frame killed on request
    DEPS_MET = "deps_met"          # everything it depends on succeeded
    DEPS_RESET = "deps_reset"      # an upstream frame went back to work
    RETRY = "retry"                # a person asked for another run
    EAT = "eat"                    # a person gave up on the frame


F = FrameState
# (state, event) -> new state.  Anything missing is an illegal transition.
TRANSITIONS: dict[tuple[FrameState, Event], FrameState] = {
    (F.WAITING, Event.DISPATCH): F.RUNNING,
    (F.RUNNING, Event.SUCCEED): F.SUCCEEDED,
    (F.RUNNING, Event.FAIL_RETRY): F.WAITING,
    (F.RUNNING, Event.FAIL_FINAL): F.DEAD,
    (F.RUNNING, Event.REQUEUE): F.WAITING,
    (F.RUNNING, Event.KILL_EAT): F.EATEN,
    (F.DEPEND, Event.DEPS_MET): F.WAITING,
    (F.WAITING, Event.DEPS_RESET): F.DEPEND,
    (F.DEAD, Event.RETRY): F.WAITING,
    (F.EATEN, Event.RETRY): F.WAITING,
    (F.SUCCEEDED, Event.RETRY): F.WAITING,
    (F.WAITING, Event.EAT): F.EATEN,
    (F.DEPEND, Event.EAT): F.EATEN,
    (F.DEAD, Event.EAT): F.EATEN,
}


class IllegalTransition(ValueError):
    pass


def next_state(state: FrameState | str, event: Event | str) -> FrameState:
    """Return the state a frame in `state` moves to on `event`, or raise IllegalTransition."""
    new = TRANSITIONS.get((state, event))     # the members themselves: no conversion
    if new is not None:
        return new
    key = (FrameState(state), Event(event))
    try:
        return TRANSITIONS[key]
    except KeyError:
        raise IllegalTransition(f"a {key[0].value} frame cannot {key[1].value}") from None


def sources(event: Event) -> list[FrameState]:
    """The states from which `event` is legal (used to build set-based WHERE clauses)."""
    return [s for (s, e) in TRANSITIONS if e == event]


# Frames in these states will not run again unless a person acts.
DONE_STATES = frozenset({F.SUCCEEDED, F.DEAD, F.EATEN})
# Frames in these states count as finished work for dependencies.
COMPLETE_STATES = frozenset({F.SUCCEEDED, F.EATEN})

# How the flag of a job paused because every host able to run it gave the same reason not to
# start it begins: the job is at fault (its user is refused, its command missing), not the
# hosts, so none is kept off it.  Other automatic pauses name the bad hosts.
SAME_REFUSAL = "paused: no host can start this job, all for the same reason"
