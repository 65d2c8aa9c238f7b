"""A job's `notify` rules: who is told what, by e-mail or webhook.

    notify:
      - {when: [finished, job_dead], email: "lead@studio.example"}
      - {when: frame_dead, webhook: "https://chat.example/hooks/render"}

Events: `finished` (every frame succeeded or was eaten), `frame_dead` (frames ran out of
retries; one message per job for the frames that died together), `job_dead` (frames died and
nothing else is left to run: the job needs someone).
"""

from __future__ import annotations

import re
from typing import Any

EVENTS = ("finished", "frame_dead", "job_dead")
RULE_KEYS = {"when", "email", "webhook"}
EMAIL_RE = re.compile(r"[^@\s,;<>]{1,64}@[A-Za-z0-9.\-]{1,253}", re.ASCII)
URL_RE = re.compile(r"https?://[^\s]{1,2040}", re.ASCII)
MAX_RULES = 20


class RuleError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def validate(value: Any, path: str = "notify") -> list[dict[str, Any]]:
    """The rules as stored: [{"when": [events], "email" | "webhook": target}]."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise RuleError(path, f"notify is a list of at most {MAX_RULES} rules")
    out = []
    for i, rule in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(rule, dict):
            raise RuleError(p, "a rule is a mapping: {when: [events], email: ADDRESS} or "
                               "{when: [events], webhook: URL}")
        extra = sorted(set(rule) - RULE_KEYS, key=str)
        if extra:
            raise RuleError(f"{p}.{extra[0]}", f"unknown key {extra[0]!r} (allowed: "
                                               f"{', '.join(sorted(RULE_KEYS))})")
        if True in rule:     # YAML 1.1 reads a key `on` as true
            raise RuleError(f"{p}.on", "the events are given as `when` (in YAML, `on` is "
                                       "read as true)")
        on = rule.get("when", ["finished"])
        if isinstance(on, str):
            on = [on]
        if not isinstance(on, list) or not on:
            raise RuleError(f"{p}.when", f"a list of events ({', '.join(EVENTS)})")
        for j, event in enumerate(on):
            if event not in EVENTS:
                raise RuleError(f"{p}.when[{j}]", f"{event!r} is not an event "
                                                f"({', '.join(EVENTS)})")
        channels = [k for k in ("email", "webhook") if k in rule]
        if len(channels) != 1:
            raise RuleError(p, "give exactly one of email and webhook")
        channel, target = channels[0], rule[channels[0]]
        regex = EMAIL_RE if channel == "email" else URL_RE
        if not isinstance(target, str) or not regex.fullmatch(target):
            what = "an e-mail address" if channel == "email" else "an http(s) URL"
            raise RuleError(f"{p}.{channel}", f"{target!r} is not {what}")
        out.append({"when": list(dict.fromkeys(on)), channel: target})
    return out
