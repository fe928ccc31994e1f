"""How commands fail: one line on stderr, a non-zero exit status, passwords masked.

Every command prints its errors as one line (``error: ...``) with exit status 1, never a
traceback, and masks the password of every URL in it. Ctrl-C ends a command with 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, NoReturn, TypeVar

import typer

from .._exceptions import TidingsError

__all__ = ["fail", "mask_text", "one_line_errors", "run_async"]

T = TypeVar("T")

_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*):[^\s@/'\"]+@")


def mask_text(text: str, urls: Iterable[str | None] = ()) -> str:
    """`text` with the password of every URL in it, and of each URL in `urls`, masked.

    The URLs given are masked even when malformed (``user:pass@host`` without a scheme),
    which `tidings.transports.mask_url` cannot recognise inside a longer text.
    """
    for url in urls:
        if not url or "@" not in url:
            continue
        userinfo = url.split("//", 1)[-1].rsplit("@", 1)[0]
        user, colon, password = userinfo.partition(":")
        if colon and password:
            text = text.replace(f"{userinfo}@", f"{user}:***@")
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


def fail(message: str, *, urls: Iterable[str | None] = (), code: int = 1) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with `code`."""
    line = " ".join(mask_text(message, urls).split()) or "unknown error"
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def one_line_errors(urls: Iterable[str | None] = ()) -> Iterator[None]:
    """Turn any `TidingsError` raised inside into one ``error:`` line and exit status 1."""
    try:
        yield
    except TidingsError as exc:
        fail(str(exc) or type(exc).__name__, urls=urls)


def run_async(
    coro: Coroutine[Any, Any, T],
    *,
    urls: Iterable[str | None] = (),
    interrupt_ok: bool = False,
) -> T | None:
    """Run `coro` to completion, with `TidingsError` reported as one line.

    Ctrl-C ends the command with status 130, or quietly with 0 when `interrupt_ok` (the
    ``--watch`` loops, which one stops with Ctrl-C).
    """
    urls = list(urls)
    with one_line_errors(urls):
        try:
            return asyncio.run(coro)
        except KeyboardInterrupt:
            if interrupt_ok:
                return None
            raise typer.Exit(130) from None
