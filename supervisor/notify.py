"""Sending notifications: e-mail over SMTP and webhooks (an HTTP POST of a JSON body).

The messages are rows of the notification outbox (supervisor.store.notifications), written
with the state changes that cause them.  A `Sender` thread of the supervisor claims the due
ones, sends each, and marks it sent, or failed with the error and a later time to try again
(exponential backoff with jitter, up to `retry_max`); after `max_tries` it gives up and the
row stays as failed, visible in `cuefarm notifications`.  Sending takes seconds when a
receiver is slow, so it never runs on the loop or its housekeeping thread.
"""

from __future__ import annotations

import json
import logging
import random
import smtplib
import threading
import time
import hashlib
import hmac
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Callable

from sqlalchemy import Engine

from cuefarm import notify_rules
from cuefarm.config import ConfigError
from supervisor.store import notifications as store

log = logging.getLogger(__name__)
EVENT_WORDS = {"finished": "finished", "frame_dead": "has dead frames",
               "job_dead": "died (dead frames, nothing left to run)"}


@dataclass
class NotificationsConfig:
    """The `[notifications]` section (env CUEFARM_NOTIFICATIONS_<KEY>)."""

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_from: str = "cuefarm@localhost"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    timeout: float = 10.0             # seconds for one delivery (SMTP or HTTP)
    poll: float = 2.0                 # seconds between looks for due notifications
    lease: float = 120.0              # a claimed notification is not taken by another sender
    retry_base: float = 5.0           # first wait after a failure; doubles each time
    retry_max: float = 900.0          # longest wait between tries
    max_tries: int = 30               # then it is given up on (state failed)
    # Webhooks carry X-CueFarm-Signature: sha256=HMAC(secret, body) when this is set, so a
    # receiver can tell the supervisor's posts from anyone's.
    webhook_secret: str = ""
    # Rules for jobs that give no `notify` of their own.
    default_on: list[str] = field(default_factory=lambda: ["finished"])
    default_email: list[str] = field(default_factory=list)
    default_webhook: list[str] = field(default_factory=list)

    def default_rules(self) -> list[dict[str, Any]] | None:
        """The default rules, checked; ConfigError naming the setting at fault."""
        rules = ([{"when": self.default_on, "email": e} for e in self.default_email]
                 + [{"when": self.default_on, "webhook": w} for w in self.default_webhook])
        try:
            return notify_rules.validate(rules, "[notifications] default") or None
        except notify_rules.RuleError as exc:
            raise ConfigError(f"[notifications] default_*: {exc.message}") from None

    def check(self) -> None:
        for key in ("poll", "lease", "retry_base", "retry_max", "timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"[notifications] {key}: must be more than 0")
        if self.max_tries < 1:
            raise ConfigError("[notifications] max_tries: must be at least 1")
        self.default_rules()


def subject(body: dict[str, Any]) -> str:
    job = body["job"]
    return f"CueFarm: job {job['name']} ({job['id']}) {EVENT_WORDS.get(body['event'], '')}"


def text_of(body: dict[str, Any]) -> str:
    job = body["job"]
    lines = [subject(body), "",
             f"project {job['project']}, user {job['user']}",
             f"{job['succeeded']} of {job['frames_total']} frames succeeded, {job['dead']} dead, "
             f"{job['eaten']} eaten"]
    if body.get("frames"):
        lines += ["", "dead frames:"] + [f"  {f['layer']} {f['frames']}" for f in body["frames"]]
    return "\n".join(lines) + "\n"


class Sender:
    """Claims, sends and marks notifications on a thread of its own until stopped."""

    def __init__(self, engine: Engine, cfg: NotificationsConfig, who: str,
                 clock: Callable[[], float] = time.time):
        self.engine, self.cfg, self.who, self.clock = engine, cfg, who, clock
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="notifications", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.wait(self.cfg.poll):
            try:
                while self.send_due() and not self.stopping.is_set():
                    pass        # a full batch: there may be more
            except Exception:   # noqa: BLE001 - the database is away: try again next time
                log.warning("cannot send notifications now", exc_info=True)

    def send_due(self, batch: int = 50) -> bool:
        """Send the due notifications of one claim; True if the claim was full."""
        with self.engine.begin() as conn:
            claimed = store.claim(conn, self.who, self.clock(), self.cfg.lease, batch)
        for note in claimed:
            if self.stopping.is_set():
                break       # the lease ends and they are taken again
            try:
                self.deliver(note)
                error = None
            except Exception as exc:   # noqa: BLE001 - any failure is the row's last error
                error = f"{type(exc).__name__}: {exc}"
            now = self.clock()
            with self.engine.begin() as conn:
                if error is None:
                    store.mark_sent(conn, note["id"], self.who, now)
                    log.info("sent %s notification %d to %s", note["channel"], note["id"],
                             note["target"])
                else:
                    tries = note["tries"] + 1
                    retry_at = None if tries >= self.cfg.max_tries else now + self.backoff(tries)
                    store.mark_failed(conn, note["id"], self.who, now, error, retry_at)
                    log.warning("%s notification %d to %s failed (try %d): %s",
                                note["channel"], note["id"], note["target"], tries, error)
        return len(claimed) >= batch

    def backoff(self, tries: int) -> float:
        wait = min(self.cfg.retry_max, self.cfg.retry_base * 2 ** min(tries - 1, 30))
        return wait * random.uniform(0.8, 1.2)

    def deliver(self, note: dict[str, Any]) -> None:
        if note["channel"] == "webhook":
            self._post(note["target"], note["body"], str(note["id"]))
        else:
            self._mail(note["target"], note["body"])

    def _post(self, url: str, body: dict[str, Any], delivery: str = "") -> None:
        data = json.dumps(body).encode()
        # The delivery id is the same on every try of one notification: a receiver that saw
        # it already (its reply was lost) can tell the repeat and drop it.
        headers = {"Content-Type": "application/json", "User-Agent": "cuefarm-supervisor",
                   "X-CueFarm-Delivery": delivery}
        if self.cfg.webhook_secret:
            digest = hmac.new(self.cfg.webhook_secret.encode(), data, hashlib.sha256)
            headers["X-CueFarm-Signature"] = f"sha256={digest.hexdigest()}"
        req = urllib.request.Request(url, data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout) as reply:
                reply.read(65536)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code} {exc.reason} from {url}") from None

    def _mail(self, address: str, body: dict[str, Any]) -> None:
        msg = EmailMessage()
        msg["From"] = self.cfg.smtp_from
        msg["To"] = address
        msg["Subject"] = subject(body)
        msg.set_content(text_of(body))
        msg.add_attachment(json.dumps(body, indent=2), subtype="json",
                           filename="notification.json")
        with smtplib.SMTP(self.cfg.smtp_host, self.cfg.smtp_port,
                          timeout=self.cfg.timeout) as smtp:
            if self.cfg.smtp_starttls:
                smtp.starttls()
            if self.cfg.smtp_user:
                smtp.login(self.cfg.smtp_user, self.cfg.smtp_password)
            smtp.send_message(msg)
