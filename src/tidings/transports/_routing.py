"""AMQP topic matching: the one function every transport and the bus route with.

A routing key and a pattern are dot-separated words. In a pattern, ``*`` matches exactly one
word and ``#`` matches zero or more words. This is RabbitMQ's topic-exchange semantics,
including its edge cases: ``#`` alone matches everything (the empty key included), and
``a.#`` matches ``a`` as well as ``a.b.c``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .._exceptions import ConfigError

__all__ = ["matches", "patterns_overlap", "validate_pattern"]

_WORD = re.compile(r"^[^.*#]*$")


def validate_pattern(pattern: str) -> str:
    """Return `pattern` if it is a valid topic pattern, else raise `ConfigError`."""
    if not isinstance(pattern, str):
        raise ConfigError(f"a subscription pattern must be a string, not {type(pattern).__name__}")
    for word in pattern.split("."):
        if word not in ("*", "#") and not _WORD.match(word):
            raise ConfigError(
                f"bad subscription pattern {pattern!r}: '*' and '#' must be whole words"
            )
    return pattern


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


@lru_cache(maxsize=16384)
def matches(pattern: str, routing_key: str) -> bool:
    """True when `routing_key` matches the topic `pattern`."""
    words = routing_key.split(".")
    parts = _compile(pattern)
    if "#" not in parts:
        if len(parts) != len(words):
            return False
        return all(p == "*" or p == w for p, w in zip(parts, words, strict=True))
    return _match_from(parts, 0, words, 0)


def _match_from(parts: tuple[str, ...], i: int, words: list[str], j: int) -> bool:
    while i < len(parts):
        part = parts[i]
        if part == "#":
            # Collapse consecutive '#'; then try every split point for the rest.
            while i + 1 < len(parts) and parts[i + 1] == "#":
                i += 1
            if i + 1 == len(parts):
                return True
            return any(_match_from(parts, i + 1, words, k) for k in range(j, len(words) + 1))
        if j >= len(words):
            return False
        if part != "*" and part != words[j]:
            return False
        i += 1
        j += 1
    return j == len(words)


def patterns_overlap(a: str, b: str) -> bool:
    """True when some routing key could match both patterns.

    Used to refuse two handlers of one group whose patterns can match the same type.
    """
    pa, pb = _compile(a), _compile(b)
    return _overlap(pa, 0, pb, 0)


def _overlap(a: tuple[str, ...], i: int, b: tuple[str, ...], j: int) -> bool:
    if i == len(a) and j == len(b):
        return True
    if i < len(a) and a[i] == "#":
        # '#' consumes zero words of b, or one word of b (staying on '#').
        return _overlap(a, i + 1, b, j) or (j < len(b) and _overlap(a, i, b, j + 1))
    if j < len(b) and b[j] == "#":
        return _overlap(a, i, b, j + 1) or (i < len(a) and _overlap(a, i + 1, b, j))
    if i == len(a) or j == len(b):
        return False
    if a[i] == "*" or b[j] == "*" or a[i] == b[j]:
        return _overlap(a, i + 1, b, j + 1)
    return False
