"""Hostile messages for the fuzz tests and benchmarks/fuzz.py: random bytes, truncated
envelopes, wrong field types, deep nesting, unknown types, wrong protocol versions, large
strings, integers out of range and NaN/inf floats, each built from the real message types
(msgspec.inspect), so every field of every message a socket takes gets its turn."""

from __future__ import annotations

import os
import random
import string
from typing import Any, Callable, Iterable

import msgspec
import msgspec.inspect as mi

from cuefarm import protocol as p

CATEGORIES = ("random_bytes", "truncated", "wrong_types", "deep_nesting", "unknown_type",
              "wrong_version", "large_strings", "int_range", "float_special")
# Categories whose messages may decode as the real type and be acted on: `keep_out` types
# are left out of them (they would reconfigure the farm or the worker for the rest of the test, as
# they are meant to: a hostile *well-formed* request is the access checks' business).
ACTED_ON = ("wrong_types", "large_strings", "int_range", "float_special")

HOSTILE_INTS = [-1, -2**31, -2**63, 2**63 - 1, 2**63, 2**64 - 1, 2**32, -(2**62)]
HOSTILE_FLOATS = [float("nan"), float("inf"), float("-inf"), -0.0, 1e308, -1e308, 5e-324]
ODD_STRINGS = ["", "\x00", "../../../../etc/passwd", "..", "/", "\u202e\ufeff", "%s%n",
               "\ud7ff", "a" * 300, "'; DROP TABLE jobs; --"]
HUGE_NUMBERS = [1e30, -1e30, 2.0**70]     # past any integer msgpack holds: floats
WRONG_VALUES: list[Any] = [None, True, 1, -1, 1.5, "x", b"\x00", [], [1, "a"], {}, {"a": 1},
                           {"": None}, [[[]]], 2**64 - 1]
# Every kind of value above, for tests that try each of them in each field of a message.
EVERY_VALUE = HOSTILE_INTS + HUGE_NUMBERS + HOSTILE_FLOATS + WRONG_VALUES + ODD_STRINGS


def seed_from_env(name: str = "CUEFARM_FUZZ_SEED") -> int:
    """The seed in environment variable `name`, or a new random one; printed either way so a
    failure can be replayed (`name=SEED pytest ...`)."""
    raw = os.environ.get(name)
    seed = int(raw) if raw else random.SystemRandom().randrange(2**32)
    print(f"fuzz seed: {name}={seed}")
    return seed


def _sample(t: mi.Type, rnd: random.Random, depth: int = 0) -> Any:
    """A plain value of inspected type `t` that decodes as it (small and ordinary)."""
    if isinstance(t, mi.IntType):
        return max(t.ge or 0, 1) if t.ge is not None else rnd.randint(1, 9)
    if isinstance(t, mi.FloatType):
        return 1.0
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.StrType):
        return "fuzz"
    if isinstance(t, (mi.BytesType, mi.ByteArrayType)):
        return b"fuzz"
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return [] if depth > 2 else [_sample(t.item_type, rnd, depth + 1)]
    if isinstance(t, mi.DictType):
        return {}
    if isinstance(t, mi.UnionType):
        choices = [x for x in t.types if not isinstance(x, mi.NoneType)] or list(t.types)
        return _sample(choices[0], rnd, depth)
    if isinstance(t, mi.StructType):
        return {f.encode_name: _sample(f.type, rnd, depth + 1) for f in t.fields}
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    return "fuzz"


def _leaves(t: mi.Type, path: tuple = ()) -> Iterable[tuple[tuple, mi.Type]]:
    """(path, type) of every scalar field reachable in a sample of `t` (lists: their first
    item, as _sample makes them)."""
    if isinstance(t, mi.UnionType):
        choices = [x for x in t.types if not isinstance(x, mi.NoneType)] or list(t.types)
        t = choices[0]
    if isinstance(t, mi.StructType):
        for f in t.fields:
            yield from _leaves(f.type, path + (f.encode_name,))
    elif isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        yield path, t
        yield from _leaves(t.item_type, path + (0,))
    else:
        yield path, t


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    target = obj
    for key in path[:-1]:
        target = target[key]
    try:
        target[path[-1]] = value
    except (IndexError, KeyError, TypeError):
        pass
    return obj


class Messages:
    """Hostile messages for a socket that takes `types` (names of protocol message types)."""

    def __init__(self, types: Iterable[str], rnd: random.Random, user: str = "fuzzer",
                 fixed: dict[str, Any] | None = None, keep_out: Iterable[str] = ()):
        """`fixed` sets top-level fields of every sample (a worker's name, so the fuzz does
        not make a host per message); `keep_out` names types left out of ACTED_ON."""
        self.rnd = rnd
        self.user = user
        self.fixed = fixed or {}
        self.types = sorted(types)
        self.acted_types = [t for t in self.types if t not in set(keep_out)]
        self.info = {name: mi.type_info(p.MESSAGE_TYPES[name]) for name in self.types}

    def sample(self, name: str) -> dict[str, Any]:
        body = _sample(self.info[name], self.rnd)
        for key, value in self.fixed.items():
            if key in body:
                body[key] = value
        return body

    def envelope(self, name: str, body: Any, version: Any = p.PROTOCOL_VERSION,
                 request_id: Any = None) -> bytes:
        rid = self.rnd.randrange(1, 2**31) if request_id is None else request_id
        return msgspec.msgpack.encode([version, name, rid, self.user, body])

    def _mutated(self, names: list[str], values: Callable[[mi.Type], Any]) -> bytes:
        name = self.rnd.choice(names)
        body = self.sample(name)
        leaves = list(_leaves(self.info[name]))
        if leaves:
            path, t = self.rnd.choice(leaves)
            body = _set(body, path, values(t))
        return self.envelope(name, body)

    # -- the categories -----------------------------------------------------------------------

    def random_bytes(self) -> bytes:
        return self.rnd.randbytes(self.rnd.choice([0, 1, 2, 5, 16, 64, 512, 4096]))

    def truncated(self) -> bytes:
        name = self.rnd.choice(self.types)
        data = self.envelope(name, self.sample(name))
        return data[:self.rnd.randrange(0, len(data))]

    def wrong_types(self) -> bytes:
        if self.rnd.random() < 0.2:       # the envelope's own fields
            env = [p.PROTOCOL_VERSION, self.rnd.choice(self.acted_types), 1, self.user, None]
            env[self.rnd.randrange(5)] = self.rnd.choice(WRONG_VALUES)
            if self.rnd.random() < 0.3:
                env = env[:self.rnd.randrange(5)] if self.rnd.random() < 0.5 else {"v": 1}
            return msgspec.msgpack.encode(env)
        # A body field of another type than declared (a list where a number goes, ...).
        def wrong(t: mi.Type) -> Any:
            return self.rnd.choice(WRONG_VALUES)
        return self._mutated(self.acted_types, wrong)

    def deep_nesting(self) -> bytes:
        depth = self.rnd.choice([100, 1000, 10_000, 100_000])
        nest = b"\x91" * depth + b"\xc0"            # [[[...[None]...]]]
        if self.rnd.random() < 0.3:
            nest = b"\x81\xa1a" * depth + b"\xc0"     # {"a": {"a": ...}}
        name = self.rnd.choice(self.types)
        head = msgspec.msgpack.encode([p.PROTOCOL_VERSION, name, 1, self.user])
        if self.rnd.random() < 0.5:      # as the whole body
            return b"\x95" + head[1:] + nest
        # As one field of a body that is otherwise fine.
        body = self.sample(name)
        if not body:
            return b"\x95" + head[1:] + nest
        key = self.rnd.choice(list(body))
        rest = {k: v for k, v in body.items() if k != key}
        raw_body = (bytes([0x80 | (len(rest) + 1)]) + msgspec.msgpack.encode(key) + nest
                    + msgspec.msgpack.encode(rest)[1:]) if len(rest) < 15 else b"\xc0"
        return b"\x95" + head[1:] + raw_body

    def unknown_type(self) -> bytes:
        known = set(p.MESSAGE_TYPES)
        name = self.rnd.choice([
            "".join(self.rnd.choices(string.ascii_letters + "_", k=self.rnd.randint(0, 40))),
            self.rnd.choice(sorted(known - set(self.types))),      # a type of the other side
            "__class__", "_on_launch", "__init__", "", "ping\x00", "PING"])
        return self.envelope(name, {})

    def wrong_version(self) -> bytes:
        version = self.rnd.choice([0, 2, -1, 255, 2**63 - 1, 2**64 - 1, -(2**63), 1.0, "1",
                                   float("nan"), None, True])
        name = self.rnd.choice(self.types)
        return self.envelope(name, self.sample(name), version=version)

    def large_strings(self) -> bytes:
        size = self.rnd.choice([1_000, 10_000, 100_000, 100_000, 1_000_000])

        def big(t: mi.Type) -> Any:
            if isinstance(t, mi.StrType) or self.rnd.random() < 0.3:
                return self.rnd.choice(string.printable) * size
            return self.rnd.choice(ODD_STRINGS)
        if self.rnd.random() < 0.1:
            return self.envelope("x" * size, {})           # a huge type name
        return self._mutated(self.acted_types, big)

    def int_range(self) -> bytes:
        def number(t: mi.Type) -> Any:
            # msgpack holds integers up to 2**64 - 1; "huge" beyond that is a float.
            return self.rnd.choice(HOSTILE_INTS + HUGE_NUMBERS)
        if self.rnd.random() < 0.1:       # the request id itself
            return self.envelope(self.rnd.choice(self.acted_types), {},
                                 request_id=self.rnd.choice(HOSTILE_INTS))
        return self._mutated(self.acted_types, number)

    def float_special(self) -> bytes:
        def special(t: mi.Type) -> Any:
            return self.rnd.choice(HOSTILE_FLOATS)
        return self._mutated(self.acted_types, special)

    def make(self, category: str) -> bytes:
        return getattr(self, category)()


# Client requests that change the farm for everyone (admission, schedules, locks, drains,
# retention, licences, path maps): a fuzzer acting as an admin would otherwise lock out the
# worker the test runs its last job on.
CLIENT_KEEP_OUT = ("set_admission", "admission_control", "set_schedule", "host_control",
                   "host_slots", "host_drain", "run_retention", "set_licences", "add_path_map",
                   "restore_archive", "set_project_members", "set_project", "host_tags")
# Supervisor messages whose meaning is "stop working for a while": drain, refused.
RQD_KEEP_OUT = ("drain", "refused")
