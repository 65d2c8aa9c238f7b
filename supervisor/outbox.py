"""Effects: what handled work asks the loop to do once that work is durable.

A handler never sends on a socket.  It records effects here (messages to workers, replies,
rows changed, a dispatch pass wanted) and the loop carries them out after it returns.
Effects recorded inside `Context.begin()` are staged with the transaction and reach the loop's
outbox only if it commits, so "a launch is sent only after its claim committed" holds by
construction: a rolled-back claim has no launch to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cuefarm import protocol as p
from supervisor.store.work import Touched


@dataclass
class Outbox:
    # to workers, in order; a Launch that cannot be delivered is a refusal of its attempt (it
    # is requeued without spending a retry), a LogRequest one answers its client at once
    messages: list[tuple[bytes, p.Body]] = field(default_factory=list)
    replies: list[tuple[list[bytes], int, p.Body]] = field(default_factory=list)
    touched: Touched = field(default_factory=Touched)
    dispatch: bool = False
    wakeups: list[float] = field(default_factory=list)   # monotonic times for a dispatch pass
    # Kills of attempts on hosts another supervisor serves [(attempt id, host id)], and why:
    # the farm bus carries them to it.
    elsewhere: list[tuple[str, int]] = field(default_factory=list)
    kill_reason: str = ""
    # Frames may have become runnable for any supervisor's workers (a completion released
    # dependents or requeued a frame): the other supervisors run a dispatch pass too.
    farm_wake: bool = False
    # Messages for the other supervisors (farmbus.Notice fields): log requests and answers.
    to_farm: list[dict] = field(default_factory=list)

    def send(self, identity: bytes, body: p.Body) -> None:
        """Send `body` to the worker connected as `identity`."""
        self.messages.append((identity, body))

    def reply(self, route: list[bytes], request_id: int, body: p.Body) -> None:
        self.replies.append((route, request_id, body))

    def note(self, touched: Touched) -> None:
        """Rows changed: subscribers hear of them; hosts among them may have a new total."""
        self.touched.merge(touched)

    def wake(self) -> None:
        """Run a dispatch pass on the next turn (work or capacity may have appeared)."""
        self.dispatch = True

    def wake_at(self, when: float) -> None:
        """Run a dispatch pass at monotonic time `when` (a backoff or ban ends then)."""
        self.wakeups.append(when)

    def kill_elsewhere(self, kills: list[tuple[str, int]], reason: str) -> None:
        """Ask the supervisors serving these hosts to kill these attempts."""
        self.elsewhere += kills
        self.kill_reason = reason

    def tell_farm(self, **fields) -> None:
        """Send a notice to the other supervisors with this transaction."""
        self.to_farm.append(fields)

    def merge(self, other: "Outbox") -> None:
        self.messages += other.messages
        self.replies += other.replies
        self.touched.merge(other.touched)
        self.dispatch = self.dispatch or other.dispatch
        self.wakeups += other.wakeups
        # `elsewhere`, `farm_wake` and `to_farm` are not the loop's: they went on the farm
        # bus with their transaction.

    def take(self) -> "Outbox":
        """Everything recorded so far, leaving this outbox empty."""
        out = Outbox(self.messages, self.replies, self.touched, self.dispatch, self.wakeups)
        self.messages, self.replies = [], []
        self.touched, self.dispatch, self.wakeups = Touched(), False, []
        return out

    def __bool__(self) -> bool:
        t = self.touched
        return bool(self.messages or self.replies or self.dispatch or self.wakeups
                    or t.jobs or t.layers or t.frames or t.hosts)

