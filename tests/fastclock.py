"""A supervisor process whose wall clock runs faster than real time, for tests of metering
(an hour of overage in six seconds).  `python -m tests.fastclock FACTOR@ORIGIN [supervisor
options]`; monotonic timers are untouched.  A function of the real wall clock, so a restarted
supervisor given the same setting carries on at the same simulated time."""

from __future__ import annotations

import sys
import time

FACTOR = 600.0        # one real second is ten simulated minutes


class FastClock:
    """FACTOR times real time from ORIGIN (epoch seconds)."""

    def __init__(self, factor: float = FACTOR, origin: float | None = None):
        self.factor = factor
        self.origin = time.time() if origin is None else origin

    @property
    def spec(self) -> str:
        return f"{self.factor}@{self.origin}"

    @classmethod
    def parse(cls, spec: str) -> "FastClock":
        factor, _, origin = spec.partition("@")
        return cls(float(factor), float(origin))

    def __call__(self, real: float | None = None) -> float:
        return self.origin + ((time.time() if real is None else real) - self.origin) * self.factor


if __name__ == "__main__":
    from supervisor.main import command
    command.main(sys.argv[2:], prog_name="supervisor", obj={"clock": FastClock.parse(sys.argv[1])})
