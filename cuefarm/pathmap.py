"""Path translation between the machines of a farm: ordered rules, applied to commands and env.

A rule (`protocol.PathRule`) says "a path starting with `source` starts with `target` here".
Rules are tried in order and the first whose source is a prefix of a path wins.  A prefix counts
only at a path-separator boundary: `/mnt/proj` matches `/mnt/proj` and `/mnt/proj/a`, never
`/mnt/projX`.

Styles: a path is a Windows path when it starts with a drive letter (`P:\\`, `p:/`) or is a UNC
path (`\\\\server\\share`); anything else is POSIX.  Windows sources match case-insensitively and
with either slash; POSIX sources match exactly.  When the target is a Windows path the rest of
the path gets backslashes; when a Windows source maps to a POSIX target, backslashes become
slashes.

Where rules apply:

- `translate_path`: one whole path (a working directory); the rest of the path is everything
  after the source.
- `apply_rules`: a command string.  Every path-looking token is translated: one that starts the
  text or follows whitespace, a quote, `=`, `,`, `:`, `;`, `|`, `&`, `<`, `>`, `(`, a backtick,
  `[` or `{`.  An unquoted path ends at whitespace, a quote or one of ``;|&<>()`,`` (and `:`
  after a POSIX source, the list separator); a quoted path may contain spaces and ends at its
  closing quote (or a list separator).
- `translate_command`: a string command as `apply_rules`; each word of an argv command as one
  word: a path in it may contain spaces and ends only at `,`, `;` or (POSIX source) `:`; a path
  token in a word starts the word or follows `=`, `,`, `:`, `;` or a quote.  The word after a
  shell's command flag (`sh -c`, `bash -lc`, `cmd /c`, `powershell -Command`) is a command
  string and is treated as one.
- `translate_env`: a value that is a list of paths (`;`-separated, or `:`-separated not counting
  drive-letter colons) is split, each item translated as an argv word and, when an item changed,
  joined again with the target OS's list separator.  A value that starts with a path is one path
  (it may contain spaces); any other value is scanned as a command string (`-o /a -i /b`).

`merge_rules` puts a worker's own rules before the central ones so that they win.  Everything
here is a pure function of its arguments.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cuefarm.protocol import PathRule

_DRIVE = re.compile(r"^[A-Za-z]:(?:[\\/]|$)")
_BARE_DRIVE = re.compile(r"^[A-Za-z]:$")
_WINDOWS_OS = frozenset({"windows", "nt", "win32"})

# A path token may start right after one of these (or at the start of the text).
_TEXT_STARTS = frozenset(" \t\r\n\v\f\"'`=,:;|&<>([{")
_WORD_STARTS = frozenset("\"'=,:;")
# An unquoted path in a command string ends at one of these.
_TEXT_ENDS = frozenset(" \t\r\n\v\f\"'`;|&<>(),")
_WORD_ENDS = frozenset(",;")
_QUOTES = "\"'"
# The flag after which a shell takes a whole command string as one argument.
_SHELL_FLAG = re.compile(r"^(?:-[A-Za-z]*c|/[cCkK]|-[Cc]ommand)$")


def is_windows_os(target_os: str | None) -> bool:
    """True for the names a Windows machine goes by ("windows" as rqd reports it, "nt", ...)."""
    if target_os is None:
        return os.name == "nt"
    return target_os.lower() in _WINDOWS_OS


def list_separator(target_os: str | None) -> str:
    """The separator of path lists (PATH, PYTHONPATH, ...) on `target_os`."""
    return ";" if is_windows_os(target_os) else ":"


def is_windows_path(path: str) -> bool:
    """True for a drive-letter path (`C:\\x`, `c:/x`, `C:`) or a UNC path (`\\\\server\\share`)."""
    return bool(_DRIVE.match(path)) or (path.startswith("\\\\") and len(path) > 2)


def is_absolute(path: str) -> bool:
    """An absolute POSIX or Windows path: what a rule's source and target must be."""
    return path.startswith("/") or is_windows_path(path)


def parse_rule(entry: object) -> PathRule:
    """A rule from configuration: `"SOURCE=TARGET"` (split at the first `=`), a table
    `{source = ..., target = ...}`, or a PathRule.  Raise ValueError when it is not a valid rule."""
    if isinstance(entry, PathRule):
        rule = entry
    elif isinstance(entry, str):
        source, sep, target = entry.partition("=")
        if not sep:
            raise ValueError(f"path rule {entry!r} is not SOURCE=TARGET")
        rule = PathRule(source.strip(), target.strip())
    elif isinstance(entry, Mapping):
        if set(entry) != {"source", "target"} or not all(
                isinstance(entry[k], str) for k in ("source", "target")):
            raise ValueError(f"path rule {dict(entry)!r} needs exactly a source and a target "
                             "(strings)")
        rule = PathRule(entry["source"].strip(), entry["target"].strip())
    else:
        raise ValueError(f"path rule {entry!r} is neither SOURCE=TARGET nor a table")
    problem = rule_problem(rule)
    if problem:
        raise ValueError(problem)
    return rule


def parse_rules(entries: Iterable[object]) -> list[PathRule]:
    """`parse_rule` over a list, in order."""
    return [parse_rule(e) for e in entries]


def rule_problem(rule: PathRule) -> str | None:
    """Why `rule` cannot be used (None when it can): both ends must be absolute paths."""
    for what, value in (("source", rule.source), ("target", rule.target)):
        if not isinstance(value, str) or not value:
            return f"path rule has an empty {what}"
        if not is_absolute(value):
            return f"path rule {what} {value!r} is not an absolute path"
        if any(c in value for c in "\0\n\r"):
            return f"path rule {what} {value!r} contains a control character"
    return None


def merge_rules(central: Iterable[PathRule], own: Iterable[PathRule]) -> list[PathRule]:
    """The rules a worker applies: its own first (so they win), then the central ones.

    A central rule whose source an own rule already covers with the same source is dropped:
    it could never apply.
    """
    merged: list[PathRule] = []
    seen: set[str] = set()
    for rule in [*own, *central]:
        key = _compile(rule).key
        if key in seen:
            continue
        seen.add(key)
        merged.append(rule)
    return merged


@dataclass(frozen=True)
class _Compiled:
    source: str             # without trailing separators: "" is the POSIX root, "C:" a drive
    key: str                # what a candidate is compared with
    windows_source: bool
    target: str
    target_base: str        # without trailing separators
    windows_target: bool

    def matches_at(self, text: str, i: int) -> bool:
        """True when the source is at `text[i:]` (the boundary is checked by the caller)."""
        n = len(self.source)
        seg = text[i:i + n]
        if self.windows_source:
            return seg.replace("/", "\\").lower() == self.key
        return seg == self.key

    def is_separator(self, c: str) -> bool:
        return c == "/" or (self.windows_source and c == "\\")

    def join(self, rest: str) -> str:
        """The target followed by `rest` (what followed the source), in the target's style."""
        if self.windows_target:
            rest = rest.replace("/", "\\")
        elif self.windows_source:
            rest = rest.replace("\\", "/")
        if not rest:
            base = self.target_base
            return base if base and not _BARE_DRIVE.match(base) else self.target
        return self.target_base + rest


def _compile(rule: PathRule) -> _Compiled:
    windows_source = is_windows_path(rule.source)
    windows_target = is_windows_path(rule.target)
    source = rule.source.rstrip("/\\" if windows_source else "/")
    key = source.replace("/", "\\").lower() if windows_source else source
    base = rule.target.rstrip("/\\" if windows_target else "/")
    return _Compiled(source, key, windows_source, rule.target, base, windows_target)


def _compile_all(rules: Iterable[PathRule]) -> list[_Compiled]:
    return [_compile(r) for r in rules if rule_problem(r) is None]


def match_rule(rules: Iterable[PathRule], path: str) -> tuple[int, PathRule] | None:
    """The index and rule that `translate_path` would apply to `path` (None: no rule matches).

    Rules that are not valid (see `rule_problem`) are skipped but keep their index.
    """
    for index, rule in enumerate(rules):
        if rule_problem(rule) is None and _whole_path_match(_compile(rule), path):
            return index, rule
    return None


def _whole_path_match(rule: _Compiled, path: str) -> bool:
    n = len(rule.source)
    if not rule.matches_at(path, 0):
        return False
    if n == len(path):
        return n > 0
    return rule.is_separator(path[n])


def translate_path(rules: Iterable[PathRule], path: str, target_os: str | None = None) -> str:
    """Translate one whole path (e.g. a working directory) with the first rule that matches;
    return it unchanged when none does.  `target_os` is accepted for symmetry; the target's own
    style decides the separators."""
    for rule in _compile_all(rules):
        if _whole_path_match(rule, path):
            return rule.join(path[len(rule.source):])
    return path


def apply_rules(rules: Iterable[PathRule], text: str, target_os: str | None = None) -> str:
    """Translate every path-looking token of a command string (see the module docstring)."""
    return _scan(_compile_all(rules), text, word=False)


def translate_word(rules: Iterable[PathRule], word: str, target_os: str | None = None) -> str:
    """Translate the paths in one argv word (a path in it may contain spaces)."""
    return _scan(_compile_all(rules), word, word=True)


def translate_command(rules: Iterable[PathRule], command: list[str] | str,
                      target_os: str | None = None) -> list[str] | str:
    """A string command through `apply_rules`; an argv command word by word, except that the
    word after a shell's command flag (`sh -c`, `bash -lc`, `cmd /c`, `powershell -Command`) is
    itself a command string and goes through `apply_rules`."""
    compiled = _compile_all(rules)
    if isinstance(command, str):
        return _scan(compiled, command, word=False)
    out = []
    for index, w in enumerate(command):
        shell_string = index > 0 and _SHELL_FLAG.match(command[index - 1]) is not None
        out.append(_scan(compiled, w, word=not shell_string))
    return out


def translate_env_value(rules: Iterable[PathRule], value: str, target_os: str | None = None) -> str:
    """Translate one environment value; path lists get `target_os`'s list separator."""
    compiled = _compile_all(rules)
    items = split_path_list(value)
    if len(items) < 2:
        # One path (which may contain spaces), or else a string of options to scan as text.
        is_path = _match_token(compiled, value, 0, True, None) is not None
        return _scan(compiled, value, word=is_path)
    out = [_scan(compiled, item, word=True) for item in items]
    if out == items:
        return value
    return list_separator(target_os).join(out)


def translate_env(rules: Iterable[PathRule], env: Mapping[str, str],
                  target_os: str | None = None) -> dict[str, str]:
    """A copy of `env` with every value translated by `translate_env_value`."""
    rules = list(rules)
    return {k: translate_env_value(rules, v, target_os) for k, v in env.items()}


def split_path_list(value: str) -> list[str]:
    """Split a path list: on `;` when there is one, else on `:` except a drive letter's colon."""
    if ";" in value:
        return value.split(";")
    items, start = [], 0
    for i, c in enumerate(value):
        if c != ":":
            continue
        # "C:\..." or "c:/...": the colon belongs to the drive letter of this item.
        if i - start == 1 and value[start].isalpha() and value[i + 1:i + 2] in ("\\", "/"):
            continue
        items.append(value[start:i])
        start = i + 1
    items.append(value[start:])
    return items


def _scan(rules: list[_Compiled], text: str, word: bool) -> str:
    if not rules or not text:
        return text
    starts = _WORD_STARTS if word else _TEXT_STARTS
    out: list[str] = []
    quote: str | None = None
    i, n = 0, len(text)
    while i < n:
        if i == 0 or text[i - 1] in starts:
            end = _match_token(rules, text, i, word, quote)
            if end is not None:
                rule, stop = end
                out.append(rule.join(text[i + len(rule.source):stop]))
                i = stop
                continue
        c = text[i]
        if not word and c in _QUOTES:
            if quote is None:
                quote = c
            elif quote == c:
                quote = None
        out.append(c)
        i += 1
    return "".join(out)


def _ends(rule: _Compiled, word: bool, quote: str | None) -> frozenset[str] | set[str]:
    if word:
        ends: frozenset[str] | set[str] = _WORD_ENDS
    elif quote is not None:
        ends = {quote, ";"}
    else:
        ends = _TEXT_ENDS
    if not rule.windows_source:
        ends = set(ends) | {":"}        # the POSIX list separator
    return ends


def _match_token(rules: list[_Compiled], text: str, i: int, word: bool,
                 quote: str | None) -> tuple[_Compiled, int] | None:
    """The first rule whose source starts a path at `text[i]`, and where that path ends."""
    for rule in rules:
        if not rule.matches_at(text, i):
            continue
        j = i + len(rule.source)
        ends = _ends(rule, word, quote)
        if j == len(text):
            if not rule.source:
                continue
        elif not (rule.is_separator(text[j]) or text[j] in ends):
            continue
        if j < len(text) and text[j] in ends and not rule.source:
            continue            # the root alone ("/" then a space) is not worth translating
        k = j
        while k < len(text) and text[k] not in ends:
            k += 1
        return rule, k
    return None
