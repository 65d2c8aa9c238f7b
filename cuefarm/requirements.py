"""Host requirement expressions, parsed safely (never `eval`).

    host.memory >= 32000 and host.os == "linux"
    "gpu" in host.tags or host.cores >= 16
    not (host.name == "render-013")

Grammar: or-expressions of and-expressions of optional `not` over comparisons
(`== != < <= > >= in`) between `host.<attribute>`, numbers, strings, `true` and `false`.
"""

from __future__ import annotations

import re
from typing import Any

ATTRIBUTES = {"name", "os", "memory", "memory_free", "cores", "slots", "gpus", "tags", "load"}
# Attributes that change while a host runs (heartbeats, frames starting and ending): an
# expression over them cannot be answered once and kept.
CHANGING = frozenset({"memory_free", "load"})
_TOKEN = re.compile(r"""\s*(?:
    (?P<num>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<str>"[^"\\]*"|'[^'\\]*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
)""", re.VERBOSE | re.ASCII)
MAX_LENGTH = 2000
MAX_TOKENS = 300     # also bounds how deep and/or chains nest when evaluated
MAX_DEPTH = 32       # parentheses and `not`s inside one another


class RequirementError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, Any]]:
    if len(text) > MAX_LENGTH:
        raise RequirementError(f"expression longer than {MAX_LENGTH} characters")
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise RequirementError(f"unexpected {text[pos:pos + 10]!r} at position {pos}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "num":
            out.append(("lit", float(value) if "." in value else int(value)))
        elif kind == "str":
            out.append(("lit", value[1:-1]))
        elif kind == "op":
            out.append(("op", value))
        elif value in ("and", "or", "not", "in"):
            out.append(("op", value))
        elif value in ("true", "false"):
            out.append(("lit", value == "true"))
        elif value.startswith("host."):
            attr = value[5:]
            if attr not in ATTRIBUTES:
                raise RequirementError(f"unknown attribute {value!r} (known: "
                                       f"{', '.join('host.' + a for a in sorted(ATTRIBUTES))})")
            out.append(("attr", attr))
        else:
            raise RequirementError(f"unknown word {value!r} (attributes are written host.NAME)")
        if len(out) > MAX_TOKENS:
            raise RequirementError(f"expression of more than {MAX_TOKENS} words and symbols")
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]):
        self.t, self.i = tokens, 0
        self.depth = 0

    def enter(self) -> None:
        """One level deeper (a parenthesis or a `not`); refuse past MAX_DEPTH rather than
        recurse without bound."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RequirementError(f"expression nested more than {MAX_DEPTH} deep "
                                   "(parentheses or 'not')")

    def peek(self) -> tuple[str, Any] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, op: str | None = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise RequirementError("the expression ends too early")
        if op is not None and tok != ("op", op):
            raise RequirementError(f"expected {op!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        node = self.or_()
        if self.peek() is not None:
            raise RequirementError(f"unexpected {self.peek()[1]!r}")
        return node

    def or_(self) -> tuple:
        node = self.and_()
        while self.peek() == ("op", "or"):
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> tuple:
        node = self.not_()
        while self.peek() == ("op", "and"):
            self.take()
            node = ("and", node, self.not_())
        return node

    def not_(self) -> tuple:
        if self.peek() == ("op", "not"):
            self.take()
            self.enter()
            node = ("not", self.not_())
            self.depth -= 1
            return node
        return self.cmp()

    def cmp(self) -> tuple:
        left = self.atom()
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">=", "in"):
            self.take()
            return ("cmp", tok[1], left, self.atom())
        return left

    def atom(self) -> tuple:
        tok = self.take()
        if tok == ("op", "("):
            self.enter()
            node = self.or_()
            self.take(")")
            self.depth -= 1
            return node
        if tok[0] in ("lit", "attr"):
            return tok
        raise RequirementError(f"unexpected {tok[1]!r}")


def parse(text: str) -> tuple:
    """Parse an expression to a small tree; raise RequirementError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise RequirementError("the expression is empty")
    return _Parser(_tokens(text)).parse()


def attributes_used(node: tuple) -> set[str]:
    """The host attributes a parsed expression reads."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n[0] == "attr":
            out.add(n[1])
        elif n[0] in ("not", "and", "or"):
            stack.extend(n[1:])
        elif n[0] == "cmp":
            stack.extend(n[2:])
    return out


def evaluate(node: tuple, host: dict[str, Any]) -> Any:
    """Evaluate a parsed expression against host attributes; type mismatches are false."""
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "attr":
        return host.get(node[1])
    if kind == "not":
        return not evaluate(node[1], host)
    if kind == "and":
        return bool(evaluate(node[1], host)) and bool(evaluate(node[2], host))
    if kind == "or":
        return bool(evaluate(node[1], host)) or bool(evaluate(node[2], host))
    op, a, b = node[1], evaluate(node[2], host), evaluate(node[3], host)
    try:
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "in":
            return a in b if isinstance(b, (list, tuple, set, str)) else False
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    except TypeError:
        return False
