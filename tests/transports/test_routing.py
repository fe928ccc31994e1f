"""Topic routing: `matches` and `patterns_overlap` against a reference written here."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings import ConfigError
from tidings.transports import matches, validate_pattern
from tidings.transports._routing import patterns_overlap

WORDS = st.sampled_from(["a", "b", "c", "order", ""])
PATTERN_WORDS = st.sampled_from(["a", "b", "c", "order", "*", "#"])


def reference_match(pattern: str, key: str) -> bool:
    """A regex translation of RabbitMQ's topic rules, independent of the implementation.

    Each word of the key is followed by a dot, so '#' is simply "any number of words".
    """
    tokens = {"*": r"[^.]*\.", "#": r"(?:[^.]*\.)*"}
    regex = "".join(tokens.get(w, re.escape(w) + r"\.") for w in pattern.split("."))
    return re.fullmatch(regex, key + ".") is not None


def keys(max_words: int = 4) -> st.SearchStrategy[str]:
    return st.lists(WORDS, min_size=1, max_size=max_words).map(".".join)


def patterns(max_words: int = 4) -> st.SearchStrategy[str]:
    return st.lists(PATTERN_WORDS, min_size=1, max_size=max_words).map(".".join)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("order.placed", "order.placed", True),
        ("order.*", "order.placed", True),
        ("order.*", "order.placed.v2", False),
        ("order.*", "order", False),
        ("order.#", "order", True),
        ("order.#", "order.placed.v2", True),
        ("#", "anything.at.all", True),
        ("#", "", True),
        ("*.placed", "order.placed", True),
        ("*.placed", "placed", False),
        ("#.placed", "placed", True),
        ("#.placed", "a.b.placed", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("video.*", "recommendation.updated", False),
    ],
)
def test_known_cases(pattern: str, key: str, expected: bool) -> None:
    assert matches(pattern, key) is expected
    assert reference_match(pattern, key) is expected


@settings(max_examples=600, deadline=None)
@given(patterns(), keys())
def test_matches_agrees_with_reference(pattern: str, key: str) -> None:
    assert matches(pattern, key) == reference_match(pattern, key)


def _all_keys(max_words: int) -> list[str]:
    alphabet = ["a", "b", "c", "order", "", "zz"]
    out: list[str] = []
    frontier = [[w] for w in alphabet]
    for _ in range(max_words):
        out.extend(".".join(k) for k in frontier)
        frontier = [k + [w] for k in frontier for w in alphabet]
    return out


ALL_KEYS = _all_keys(4)


@settings(max_examples=300, deadline=None)
@given(patterns(3), patterns(3))
def test_overlap_agrees_with_brute_force(a: str, b: str) -> None:
    # Every pattern here has at most 3 words, so a key of at most 4 words over an alphabet
    # with one word no pattern names ("zz") witnesses any overlap.
    witnessed = any(matches(a, k) and matches(b, k) for k in ALL_KEYS)
    assert patterns_overlap(a, b) == witnessed


@pytest.mark.parametrize("bad", ["order.pla*", "or#der", "a.*b"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="whole words"):
        validate_pattern(bad)
