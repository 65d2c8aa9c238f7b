"""Worker licences: how many workers may run frames at once, and metered mode.

A worker holds one licence while it runs at least one frame.  The dispatcher asks
`Licensing.cap()` on every pass (from memory); the cap is the installed count while the farm
is prepaid, and None (no cap) in metered mode, where the workers beyond the count are billed
as overage (see metering).  A sink that answers that metering is no longer authorized revokes
it: the cap applies again.

When a cap applies, the pass calls `Licensing.budget()` inside its transaction: that locks the
`licence_terms` row (FOR UPDATE on PostgreSQL; SQLite transactions are already serialized) and
counts the workers running frames farm-wide, so supervisors sharing a database take licences
in turn and never together pass the cap (a pass that finds the row held by another gives no
new licence that time and looks again a moment later: it never waits for the row).  When more workers are busy than the cap allows
(metering revoked, or the count lowered), the ones that took their licence last get no new
frames until the busy count has drained down to the cap.

Terms come from the configuration unless changed at run time (`cuefarm licences set`), which
stores them in the `licence_terms` row so every supervisor sharing the database sees them.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from cuefarm.config import ConfigError, SupervisorConfig
from supervisor.metering import MICRO, dollars, money_text, resend_refused, to_micros
from supervisor.store import licences as store

log = logging.getLogger(__name__)
MAX_LICENCES = 1_000_000
MAX_RATE = Decimal(1_000_000)
_WHOLE = re.compile(r"-?[0-9]{1,12}", re.ASCII)


class TermsError(ValueError):
    """A licence setting that cannot be used; `field` names it."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def parse_count(text: Any, what: str = "worker licences") -> int | None:
    """A licence count from configuration or a request: None for "" (no cap), else a whole
    number from 0 up."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, bool):
        raise TermsError(f"{what}: {text!r} is not a whole number", "count")
    if isinstance(text, int):
        value = text
    else:
        t = str(text).strip()
        if not _WHOLE.fullmatch(t):
            raise TermsError(f"{what}: {text!r} is not a whole number", "count")
        value = int(t)
    if value < 0:
        raise TermsError(f"{what} cannot be negative (got {value})", "count")
    if value > MAX_LICENCES:
        raise TermsError(f"{what}: {value} is more than {MAX_LICENCES}", "count")
    return value


def check_rate(rate: Any) -> Decimal:
    """A metering rate (dollars per worker-hour) from a number or a decimal string, as an exact
    Decimal with six places; TermsError when it is not a number from 0 to MAX_RATE or is finer
    than a micro-dollar.  A float is read as the decimal it prints as (0.1 is 0.1)."""
    bad = TermsError(f"metering rate {rate!r} must be a number of dollars per worker-hour "
                     f"from 0 to {MAX_RATE}", "rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float, str, Decimal)):
        raise bad
    try:
        value = rate if isinstance(rate, Decimal) else Decimal(str(rate).strip())
    except InvalidOperation:
        raise bad from None
    if not value.is_finite() or value < 0 or value > MAX_RATE:
        raise bad
    if value != value.quantize(MICRO):
        raise TermsError(f"metering rate {rate!r} has more than six decimal places (rates "
                         f"are kept to the micro-dollar)", "rate")
    return value.quantize(MICRO)


def check_sink(text: str) -> str:
    """A metering sink: an http(s) URL with a host, a file:// URL, or an absolute directory
    path.  Returned normalised (directories as plain paths); TermsError when it does not
    parse."""
    t = (text or "").strip()
    if not t:
        return ""
    if any(ord(c) < 32 or c == "\x7f" for c in t) or len(t) > 2000:
        raise TermsError(f"metering sink {text!r} contains control characters or is too long",
                         "sink")
    if "://" not in t:
        if not os.path.isabs(t):
            raise TermsError(f"metering sink {text!r} is neither an http(s):// URL nor an "
                             f"absolute directory path", "sink")
        return str(Path(t))
    if any(c.isspace() for c in t):
        raise TermsError(f"metering sink {text!r} does not parse as a URL: it contains spaces "
                         f"(write them as %20)", "sink")
    try:
        u = urllib.parse.urlsplit(t)
        port = u.port        # raises ValueError for a port that is not a number or too big
    except ValueError as exc:
        raise TermsError(f"metering sink {text!r} does not parse as a URL: {exc}", "sink") \
            from None
    if u.scheme in ("http", "https"):
        if not u.hostname:
            raise TermsError(f"metering sink {text!r} has no host name", "sink")
        if port == 0:
            raise TermsError(f"metering sink {text!r}: port 0", "sink")
        return t
    if u.scheme == "file":
        if u.netloc not in ("", "localhost") or not u.path.startswith("/"):
            raise TermsError(f"metering sink {text!r}: a file:// URL must name an absolute "
                             f"local directory (file:///path)", "sink")
        return str(Path(urllib.parse.unquote(u.path)))
    raise TermsError(f"metering sink {text!r}: scheme {u.scheme!r} is not http, https or "
                     f"file", "sink")


@dataclass
class Terms:
    """The licence terms in force."""

    installed: int | None = None     # prepaid worker licences; None: no cap at all
    metered: bool = False            # metering switched on (by config or an admin)
    revoked: bool = False            # the sink withdrew its authorization
    sink: str = ""
    rate: Decimal = Decimal("0.100000")   # $ per worker-hour
    revoked_at: float | None = None
    revoked_reason: str = ""

    @property
    def metering_active(self) -> bool:
        """Whether workers may go past the installed count now."""
        return self.metered and not self.revoked and self.installed is not None

    def cap(self) -> int | None:
        return None if self.installed is None or self.metering_active else self.installed


class Licensing:
    """The terms in force, cached for the dispatcher; changes go through the database."""

    def __init__(self, cfg: SupervisorConfig):
        try:
            self.default_installed = parse_count(cfg.worker_licences)
            self.default_sink = check_sink(cfg.metering_sink)
            self.default_rate = check_rate(cfg.metering_rate)
        except TermsError as exc:
            raise ConfigError(f"supervisor configuration: {exc}") from None
        self.default_metered = bool(cfg.metering)
        if self.default_metered and not self.default_sink:
            raise ConfigError("supervisor configuration: metering = true needs a metering_sink "
                              "(an http(s) URL or a directory) to report overage to")
        self.terms = self._merge(None)
        # host id -> when it took its licence (the start of its current busy span, as first
        # seen): who is "last" past the cap.  Kept while the host stays busy, so the order does
        # not shift as frames end and start on the hosts that keep theirs.
        self.holders: dict[int, float] = {}
        self.contended = False    # the last budget() found the terms row held elsewhere

    def cap(self) -> int | None:
        """Workers that may hold a licence at once (None: no cap).  Memory only."""
        return self.terms.cap()

    def ensure_row(self, conn: Connection, now: float) -> None:
        """Create the licence_terms row (every column "as configured") if it is missing, so a
        dispatch pass always has a row to lock."""
        store.ensure_terms(conn, now)

    def budget(self, conn: Connection, cap: int) -> tuple[int, set[int]]:
        """In a dispatch pass's transaction, under a cap: (idle workers that may still take a
        licence, busy hosts past the cap that must start nothing new).  Locks the terms row
        on PostgreSQL until the pass commits."""
        held = store.lock_terms(conn)
        self.contended = not held     # the dispatcher looks again soon
        busy = store.busy_since(conn)
        for host in [h for h in self.holders if h not in busy]:
            del self.holders[host]
        for host, started in busy.items():
            self.holders.setdefault(host, started if started is not None else 0.0)
        if len(busy) <= cap:      # none to give while another supervisor's pass gives them
            return (cap - len(busy) if held else 0), set()
        ranked = sorted(busy, key=lambda h: (self.holders[h], h))
        return 0, set(ranked[cap:])

    def _merge(self, row: Any) -> Terms:
        t = Terms(self.default_installed, self.default_metered, False, self.default_sink,
                  self.default_rate)
        if row is None:
            return t
        if row.installed_set:
            t.installed = row.installed
        if row.metered is not None:
            t.metered = row.metered
        if row.sink is not None:
            t.sink = row.sink
        if row.rate_micros is not None:
            t.rate = dollars(row.rate_micros)
        t.revoked, t.revoked_at, t.revoked_reason = row.revoked, row.revoked_at, \
            row.revoked_reason or ""
        return t

    def load(self, conn: Connection) -> Terms:
        """Refresh the cached terms from the database (another supervisor may have changed
        them); returns them."""
        self.terms = self._merge(store.terms(conn))
        return self.terms

    def change(self, conn: Connection, now: float, count: Any = None, unlimited: bool = False,
               metered: bool | None = None, sink: str | None = None,
               rate: Any = None) -> Terms:
        """Apply an admin's change (only what is given); TermsError for bad values."""
        values: dict[str, Any] = {}
        if unlimited and count is not None:
            raise TermsError("give a licence count or unlimited, not both", "count")
        if unlimited:
            values.update(installed_set=True, installed=None)
        elif count is not None:
            values.update(installed_set=True, installed=parse_count(count))
        if sink is not None:
            values["sink"] = check_sink(sink)
        if rate is not None:
            values["rate_micros"] = to_micros(check_rate(rate))
        current = self.load(conn)
        if metered is not None:
            values["metered"] = metered
            if metered:
                # Switching metering on is the admin re-authorizing it: the reports the sink
                # refused as unauthorized go again.
                values.update(revoked=False, revoked_at=None, revoked_reason="")
                resend_refused(conn)
        if metered or (metered is None and current.metered and "sink" in values):
            if not values.get("sink", current.sink):
                raise TermsError("metered mode needs a sink to report overage to (an http(s) "
                                 "URL or a directory)", "sink")
        if values:
            store.write_terms(conn, now, **values)
        return self.load(conn)

    def revoke(self, conn: Connection, now: float, reason: str) -> Terms:
        """The sink said metering is no longer authorized: enforce the installed count."""
        store.write_terms(conn, now, revoked=True, revoked_at=now, revoked_reason=reason[:500])
        log.warning("metering revoked by the sink (%s): enforcing %s worker licences", reason,
                    self.terms.installed)
        return self.load(conn)

    def describe(self) -> dict[str, Any]:
        t = self.terms
        return {**asdict(t), "rate": money_text(t.rate), "metering_active": t.metering_active,
                "cap": t.cap()}
