"""The pipeline around the farm, assembled: notification sending and the retention duty.

Their settings are sections of their own in the configuration (`[notifications]`,
`[retention]`), built once in main(); `attach` starts their parts with the supervisor and
`detach` stops them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cuefarm.config import load
from supervisor import retention
from supervisor.notify import NotificationsConfig, Sender
from supervisor.retention import RetentionConfig


@dataclass
class PipelineSettings:
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    sender: Sender | None = None

    @property
    def default_rules(self) -> list[dict[str, Any]] | None:
        return self.notifications.default_rules()


def load_settings(files: Any = None, environ: dict[str, str] | None = None) -> PipelineSettings:
    """The pipeline's settings from files and environment; ConfigError naming the key."""
    notifications = load(NotificationsConfig, "notifications", None, files, environ)
    notifications.check()
    kept = load(RetentionConfig, "retention", None, files, environ)
    kept.check()
    return PipelineSettings(notifications, kept)


def attach(sv: Any) -> None:
    """Start the pipeline's parts for supervisor `sv` (its context holds the settings)."""
    settings: PipelineSettings | None = sv.cx.pipeline
    if settings is None:
        return
    settings.sender = Sender(sv.engine, settings.notifications, f"{sv.cx.owner}/{sv.cx.id}",
                             sv.clock)
    settings.sender.start()
    # Done once per farm: by whichever supervisor sharing the database holds the duty.
    kept = settings.retention
    sv.loop.add_background(kept.interval, retention.duty(kept, sv.engine, sv.clock),
                           duty="retention")


def detach(sv: Any) -> None:
    settings: PipelineSettings | None = sv.cx.pipeline
    if settings is not None and settings.sender is not None:
        settings.sender.stop()
