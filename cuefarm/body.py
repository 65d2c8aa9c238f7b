"""The base of every message body, and the one integer type of the wire."""

from __future__ import annotations

from typing import Annotated

import msgspec

# Every whole number on the wire: what the databases hold (a signed 64-bit integer).  A bigger
# one is refused when the message is decoded, never met by a database write.
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class Body(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every message body."""
