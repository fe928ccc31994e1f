"""Suite-wide hooks: each test's call report is kept on its item, so fixtures such as
`tests.support.children` know at teardown whether the test failed."""

from __future__ import annotations

import signal
from collections.abc import Generator
from typing import Any

import pytest

# Before anything imports the shipped contract suite, for its detailed assertion messages.
pytest.register_assert_rewrite("tidings.contract")

from tests.support import children  # noqa: E402, F401  (the fixture, for every test)

# A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so
# would every child process, which then cannot be stopped with Ctrl-C as the CLI tests do.
# A handler of our own (unlike "ignored") is reset to the default in a child at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
