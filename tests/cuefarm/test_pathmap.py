"""Path rules: matching at separator boundaries, styles, first match, merging, where they apply."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cuefarm import pathmap as pm
from cuefarm.protocol import PathRule as R

TO_WIN = [R("/mnt/proj", "P:\\proj"), R("/mnt/lib", "/opt/lib")]
TO_POSIX = [R("P:\\proj", "/mnt/proj"), R("\\\\filer\\share", "/net/share")]


@pytest.mark.parametrize("rules, path, want", [
    # POSIX -> Windows: the rest of the path gets backslashes.
    (TO_WIN, "/mnt/proj/shot/a.exr", "P:\\proj\\shot\\a.exr"),
    (TO_WIN, "/mnt/proj", "P:\\proj"),
    (TO_WIN, "/mnt/proj/", "P:\\proj\\"),
    # POSIX -> POSIX: unchanged apart from the prefix.
    (TO_WIN, "/mnt/lib/x/y.so", "/opt/lib/x/y.so"),
    # The prefix must end at a separator.
    (TO_WIN, "/mnt/projX/a", "/mnt/projX/a"),
    (TO_WIN, "/mnt/pro", "/mnt/pro"),
    (TO_WIN, "/elsewhere/mnt/proj/a", "/elsewhere/mnt/proj/a"),
    # Windows -> POSIX: either slash, any case; backslashes become slashes.
    (TO_POSIX, "P:\\proj\\shot\\a.exr", "/mnt/proj/shot/a.exr"),
    (TO_POSIX, "p:/proj/shot/a.exr", "/mnt/proj/shot/a.exr"),
    (TO_POSIX, "P:\\PROJ", "/mnt/proj"),
    (TO_POSIX, "P:\\projX\\a", "P:\\projX\\a"),
    (TO_POSIX, "\\\\filer\\share\\tex\\b.tx", "/net/share/tex/b.tx"),
    # Trailing separators in a rule do not matter; roots work.
    ([R("/mnt/proj/", "/data/")], "/mnt/proj/a", "/data/a"),
    ([R("/", "Z:\\")], "/a/b", "Z:\\a\\b"),
    ([R("/a", "/")], "/a/b", "/b"),
    ([R("/a", "/")], "/a", "/"),
    ([R("C:\\", "/c")], "C:\\x\\y", "/c/x/y"),
])
def test_translate_path(rules, path, want):
    assert pm.translate_path(rules, path, "windows") == want


def test_first_matching_rule_wins():
    rules = [R("/mnt", "/first"), R("/mnt/proj", "/second")]
    assert pm.translate_path(rules, "/mnt/proj/a", "linux") == "/first/proj/a"
    assert pm.translate_path(rules[::-1], "/mnt/proj/a", "linux") == "/second/a"
    assert pm.match_rule(rules[::-1], "/mnt/other") == (1, rules[0])
    assert pm.match_rule(rules, "/srv/x") is None


def test_worker_rules_override_central_ones():
    central = [R("/mnt/proj", "P:\\proj"), R("/mnt/lib", "L:\\lib")]
    own = [R("/mnt/proj/", "D:\\local\\proj")]
    merged = pm.merge_rules(central, own)
    # The worker's rule comes first; the central rule with the same source can never apply.
    assert merged == [own[0], central[1]]
    assert pm.translate_path(merged, "/mnt/proj/a", "windows") == "D:\\local\\proj\\a"
    assert pm.translate_path(merged, "/mnt/lib/a", "windows") == "L:\\lib\\a"
    assert pm.merge_rules(central, []) == central


def test_command_string_with_equals_quotes_and_separators():
    cmd = ("render -o /mnt/proj/out/f.exr --scene=/mnt/proj/s.ma "
           "--tex='/mnt/proj/My Textures/a.tx' \"/mnt/proj\" /mnt/projX/keep "
           "&& cat /mnt/lib/x;echo /mnt/proj/y,/mnt/proj/z")
    assert pm.apply_rules(TO_WIN, cmd, "windows") == (
        "render -o P:\\proj\\out\\f.exr --scene=P:\\proj\\s.ma "
        "--tex='P:\\proj\\My Textures\\a.tx' \"P:\\proj\" /mnt/projX/keep "
        "&& cat /opt/lib/x;echo P:\\proj\\y,P:\\proj\\z")


def test_command_string_windows_to_posix():
    cmd = 'render.exe -o P:\\proj\\out\\f.exr "p:/proj/My Dir/s.ma" --x=\\\\filer\\share\\t.tx'
    assert pm.apply_rules(TO_POSIX, cmd, "linux") == (
        'render.exe -o /mnt/proj/out/f.exr "/mnt/proj/My Dir/s.ma" --x=/net/share/t.tx')


def test_argv_words():
    argv = ["render", "/mnt/proj/My Shot/a.exr", "--out=/mnt/proj/o v", "/mnt/projX",
            "-paths", "/mnt/proj/a:/mnt/lib/b", "plain"]
    assert pm.translate_command(TO_WIN, argv, "windows") == [
        "render", "P:\\proj\\My Shot\\a.exr", "--out=P:\\proj\\o v", "/mnt/projX",
        "-paths", "P:\\proj\\a:/opt/lib/b", "plain"]


@pytest.mark.parametrize("shell", [["sh", "-c"], ["bash", "-lc"], ["cmd.exe", "/c"],
                                   ["powershell", "-Command"]])
def test_a_shell_command_string_inside_argv(shell):
    argv = [*shell, "render /mnt/proj/a -o /mnt/proj/b"]
    assert pm.translate_command(TO_WIN, argv, "windows")[-1] == \
        "render P:\\proj\\a -o P:\\proj\\b"


def test_env_values_and_lists_use_the_target_separator():
    env = {"PYTHONPATH": "/mnt/proj/py:/usr/lib/py", "OUT": "/mnt/proj/out dir",
           "OPTS": "--tex=/mnt/proj/t", "ARGS": "-o /mnt/proj/o -i /mnt/lib/i",
           "HOSTPORT": "db:5432", "EMPTY": "", "UNTOUCHED": "/usr/a:/usr/b"}
    assert pm.translate_env(TO_WIN, env, "windows") == {
        "PYTHONPATH": "P:\\proj\\py;/usr/lib/py", "OUT": "P:\\proj\\out dir",
        "OPTS": "--tex=P:\\proj\\t", "ARGS": "-o P:\\proj\\o -i /opt/lib/i",
        "HOSTPORT": "db:5432", "EMPTY": "", "UNTOUCHED": "/usr/a:/usr/b"}
    # Windows lists (;) going to POSIX; a drive letter's colon is not a separator.
    back = {"PATH": "P:\\proj\\bin;C:\\Windows", "ONE": "P:\\proj\\x"}
    assert pm.translate_env(TO_POSIX, back, "linux") == {
        "PATH": "/mnt/proj/bin:C:\\Windows", "ONE": "/mnt/proj/x"}
    assert pm.translate_env([R("/a", "/b")], {"P": "/a/x:/a/y"}, "linux") == {"P": "/b/x:/b/y"}


def test_cwd_is_one_whole_path():
    assert pm.translate_path(TO_WIN, "/mnt/proj/My Shot", "windows") == "P:\\proj\\My Shot"
    assert pm.translate_path(TO_WIN, "relative/mnt/proj", "windows") == "relative/mnt/proj"


def test_split_path_list():
    assert pm.split_path_list("/a:/b") == ["/a", "/b"]
    assert pm.split_path_list("C:\\a") == ["C:\\a"]
    assert pm.split_path_list("C:\\a;d:/b") == ["C:\\a", "d:/b"]
    assert pm.split_path_list("x") == ["x"]


@pytest.mark.parametrize("entry, want", [
    ("/mnt/proj=P:\\proj", R("/mnt/proj", "P:\\proj")),
    (" /a = /b ", R("/a", "/b")),
    ({"source": "\\\\filer\\share", "target": "/net/share"}, R("\\\\filer\\share", "/net/share")),
    (R("/a", "/b"), R("/a", "/b")),
])
def test_parse_rule(entry, want):
    assert pm.parse_rule(entry) == want


@pytest.mark.parametrize("entry", ["/a", "relative=/b", "/a=", "=/b", {"source": "/a"},
                                   {"source": "/a", "target": 5}, 42, "/a=b\nc"])
def test_bad_rules_are_refused(entry):
    with pytest.raises(ValueError):
        pm.parse_rule(entry)


def test_invalid_rules_are_skipped_when_applied():
    rules = [R("", "/x"), R("rel", "/x"), R("/mnt/proj", "/data")]
    assert pm.translate_path(rules, "/mnt/proj/a", "linux") == "/data/a"
    assert pm.apply_rules(rules, "rel/a /mnt/proj/a", "linux") == "rel/a /data/a"
    assert pm.match_rule(rules, "/mnt/proj") == (2, rules[2])


@pytest.mark.parametrize("path, windows", [
    ("C:\\x", True), ("c:/x", True), ("C:", True), ("\\\\srv\\share", True),
    ("/mnt/x", False), ("relative", False), ("C:x", False), ("\\\\", False)])
def test_styles(path, windows):
    assert pm.is_windows_path(path) is windows


def test_list_separator():
    assert pm.list_separator("windows") == ";"
    assert pm.list_separator("linux") == pm.list_separator("darwin") == ":"


def test_no_rules_means_no_change():
    assert pm.apply_rules([], "render /mnt/proj/a", "windows") == "render /mnt/proj/a"
    assert pm.translate_command([], ["a", "/b"], "linux") == ["a", "/b"]


segments = st.lists(st.text("abcXYZ019_.- ", min_size=1, max_size=8).filter(
    lambda s: s.strip(" ") == s), min_size=0, max_size=5)


@given(segments)
def test_posix_to_windows_and_back_is_the_same_path(parts):
    path = "/".join(["/mnt/proj", *parts])
    there = pm.translate_path(TO_WIN, path, "windows")
    assert there.startswith("P:\\proj") and "/" not in there
    assert pm.translate_path(TO_POSIX, there, "linux") == path
    # The same path quoted inside a command string.
    cmd = f'render -i "{path}" -o x'
    assert pm.apply_rules(TO_POSIX, pm.apply_rules(TO_WIN, cmd, "windows"), "linux") == cmd
