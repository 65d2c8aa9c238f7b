"""Frame ranges, chunking and command tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cuefarm.frames import (RangeError, chunks, count_frames, expand, expand_command,
                            substitute)


@pytest.mark.parametrize("text,expected", [
    ("1-100x2", list(range(1, 100, 2))),
    ("1,5,9", [1, 5, 9]),
    ("10-1", list(range(10, 0, -1))),
    ("1-10x3", [1, 4, 7, 10]),
    ("5", [5]),
    ("5-5", [5]),
    ("0", [0]),
    ("-3--1", [-3, -2, -1]),
    ("-2-2", [-2, -1, 0, 1, 2]),
    ("1-3,7,10-12", [1, 2, 3, 7, 10, 11, 12]),
    (" 1 - 3 ", [1, 2, 3]),
    ("10-1x-3", [10, 7, 4, 1]),
])
def test_expand(text, expected):
    assert expand(text, 1_000_000) == expected
    assert count_frames(text) == len(expected)


def test_1_100x2_has_50_frames():
    frames = expand("1-100x2", 1000)
    assert len(frames) == 50 and frames[0] == 1 and frames[-1] == 99


@pytest.mark.parametrize("text", [
    "", " ", "abc", "1-10x0", "1-", "-", "1,", ",1", "1..10", "1-10x", "x2", "1-10:2",
    "1-10y2", "\uff11-5", "1_000", "1-5\n", "10-1x2", "1-10x-1", "1" * 5000, "99999999999",
])
def test_bad_ranges(text):
    with pytest.raises(RangeError):
        count_frames(text)
    with pytest.raises(RangeError):
        expand(text, 1_000_000)


@pytest.mark.parametrize("value", [None, 5, 1.5, ["1-5"], b"1-5"])
def test_range_must_be_a_string(value):
    with pytest.raises(RangeError):
        count_frames(value)


def test_expand_refuses_before_expanding():
    # Four billion frames could not be expanded in memory: refusal must come from the count.
    with pytest.raises(RangeError, match="more than the maximum"):
        expand("-2147483647-2147483647", 1_000_000)
    assert count_frames("1-1000000000") == 1_000_000_000


@given(start=st.integers(-500, 500), end=st.integers(-500, 500), step=st.integers(1, 40))
def test_count_matches_expansion(start, end, step):
    signed = step if end >= start else -step
    text = f"{start}-{end}x{signed}"
    expected = list(range(start, end + (1 if signed > 0 else -1), signed))
    assert count_frames(text) == len(expected)
    assert expand(text, 10_000) == expected


def test_chunks_of_three_with_a_short_last_chunk():
    cs = chunks(expand("1-10", 100), 3)
    assert [c.numbers for c in cs] == [(1, 2, 3), (4, 5, 6), (7, 8, 9), (10,)]
    assert [c.index for c in cs] == [0, 1, 2, 3]
    assert [(c.start, c.end) for c in cs] == [(1, 3), (4, 6), (7, 9), (10, 10)]
    assert [c.label for c in cs] == ["1-3", "4-6", "7-9", "10"]


@pytest.mark.parametrize("text,size,labels", [
    ("1-100x2", 3, ["1-5x2", "7-11x2"]),
    ("10-1", 3, ["10-8", "7-5", "4-2", "1"]),
    ("1,5,9,10", 3, ["1-9x4", "10"]),
    ("1-2,4", 3, ["1-2,4"]),
    ("1-5", 1, ["1", "2", "3", "4", "5"]),
    ("1-5", 100, ["1-5"]),
])
def test_chunk_labels(text, size, labels):
    assert [c.label for c in chunks(expand(text, 1000), size)][:len(labels)] == labels


def test_chunks_cover_every_frame_once_in_order():
    frames = expand("1-100x2", 1000)
    cs = chunks(frames, 7)
    assert [n for c in cs for n in c.numbers] == frames
    assert all(len(c.numbers) == 7 for c in cs[:-1]) and len(cs[-1].numbers) == 50 % 7


def test_chunk_size_must_be_positive():
    with pytest.raises(RangeError):
        chunks([1, 2, 3], 0)
    assert chunks([], 3) == []


def test_tokens_in_a_string_command():
    cmd = "render -s #FRAME_START# -e #FRAME_END# -o out.#ZFRAME#.exr # frame #FRAME#"
    assert expand_command(cmd, 7, 9) == "render -s 7 -e 9 -o out.0007.exr # frame 7"


def test_tokens_in_a_list_command():
    cmd = ["render", "-s", "#FRAME_START#", "-e", "#FRAME_END#", "out.#ZFRAME#.exr", "#FRAME#"]
    assert expand_command(cmd, 12, 20) == ["render", "-s", "12", "-e", "20", "out.0012.exr", "12"]
    assert cmd[2] == "#FRAME_START#", "the spec's command must not be changed in place"


@pytest.mark.parametrize("start,expected", [(0, "0000"), (7, "0007"), (1001, "1001"),
                                            (12345, "12345")])
def test_zframe_pads_to_four(start, expected):
    assert substitute("#ZFRAME#", start, start) == expected


def test_tokens_are_independent():
    # #FRAME# is a prefix of neither #FRAME_START# nor #FRAME_END#: each is replaced whole.
    assert substitute("#FRAME_START#|#FRAME_END#|#FRAME#", 1, 5) == "1|5|1"
    assert substitute("no tokens # here #FRAME", 1, 5) == "no tokens # here #FRAME"
