"""The base of every message body, and the one integer type of the wire."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

# Every whole number on the wire: what the databases hold (a signed 64-bit integer).  A bigger
# one is refused when the message is decoded, never met by a database write.
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# The most jobs, frames, hosts or names one request may list: a million of them held the
# supervisor's loop over a second (and SQLite takes some 32,000 in one statement).
MAX_REQUEST_ITEMS = 10_000
Ids = Annotated[list[Int], msgspec.Meta(max_length=MAX_REQUEST_ITEMS)]
Names = Annotated[list[str], msgspec.Meta(max_length=MAX_REQUEST_ITEMS)]
# The values a request changes (a job's or layer's settings): a handful of keys.
Values = Annotated[dict[str, Any], msgspec.Meta(max_length=64)]


class Body(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every message body."""


def in_parts(items: list, most: int) -> list[list]:
    """`items` in lists of at most `most` (one, maybe empty, when they fit): requests naming
    them all, a part each."""
    return [items[i:i + most] for i in range(0, max(len(items), 1), most)]
