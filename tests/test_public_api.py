"""The public surface is exactly `tidings.__all__`."""

from __future__ import annotations

import inspect

import tidings


def test_all_is_pinned() -> None:
    assert sorted(tidings.__all__) == sorted(
        [
            "BrokerUnavailable",
            "Bus",
            "Command",
            "ConfigError",
            "Context",
            "DeadLetter",
            "DeadLetterNotFound",
            "DeadLetters",
            "Envelope",
            "Event",
            "Failure",
            "FailureGroup",
            "GroupStats",
            "MessageTooLarge",
            "Middleware",
            "NotSupported",
            "Outcome",
            "OutboxStats",
            "Permanent",
            "QueueFull",
            "RemoteError",
            "RequestTimeout",
            "Retry",
            "StateError",
            "TidingsError",
            "Unroutable",
            "__version__",
        ]
    )
    for name in tidings.__all__:
        assert hasattr(tidings, name), name


def test_exception_tree() -> None:
    for name in (
        "ConfigError",
        "BrokerUnavailable",
        "Unroutable",
        "MessageTooLarge",
        "NotSupported",
        "Permanent",
        "QueueFull",
        "StateError",
        "DeadLetterNotFound",
        "RemoteError",
        "RequestTimeout",
    ):
        assert issubclass(getattr(tidings, name), tidings.TidingsError), name


def test_signatures_and_defaults_follow_the_design() -> None:
    bus = inspect.signature(tidings.Bus)
    assert bus.parameters["url"].default is None
    assert bus.parameters["name"].default == "tidings"
    assert bus.parameters["consume"].default is True
    assert bus.parameters["on_unroutable"].default == "error"
    assert bus.parameters["max_message_size"].default == 1024 * 1024
    assert bus.parameters["lease"].default == 30.0
    assert bus.parameters["retention"].default == 7 * 24 * 3600
    assert bus.parameters["wire"].default == "structured"
    assert bus.parameters["poison_after"].default == 3
    sub = inspect.signature(tidings.Bus.subscribe)
    assert sub.parameters["concurrency"].default == 16
    assert sub.parameters["idempotent"].default is False
    assert sub.parameters["ordered"].default is False
    assert sub.parameters["timeout"].default == 300.0
    assert sub.parameters["max_ready"].default is None
    request = inspect.signature(tidings.Bus.request)
    assert request.parameters["to"].kind is inspect.Parameter.KEYWORD_ONLY
    assert request.parameters["timeout"].default == 30.0
    assert request.parameters["key"].default is None
    retry = tidings.Retry()
    assert (retry.attempts, retry.base, retry.max_delay) == (5, 0.5, 60.0)
    assert retry.on == (Exception,) and retry.never == ()


def test_every_public_name_has_a_docstring() -> None:
    for name in tidings.__all__:
        if name.startswith("__"):
            continue
        assert inspect.getdoc(getattr(tidings, name)), name
