"""``tidings health``: exit 0 when the broker answers, 1 otherwise."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from .. import BrokerUnavailable
from ..transports import mask_url
from .connection import connect, inspected_broker
from .errors import run_async
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption

__all__ = ["health"]

TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the broker.")
]


def health(
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Check that the broker answers: print "ok URL" and exit 0, else exit 1."""
    broker = inspected_broker(app, url, name, management_url)

    async def check() -> str:
        try:
            async with asyncio.timeout(timeout):
                async with connect(broker) as bus:
                    await bus.ping()
                    return bus.url
        except TimeoutError:
            raise BrokerUnavailable(f"no answer from the broker within {timeout:g}s") from None

    answered = run_async(check(), urls=broker.secrets)
    typer.echo(f"ok {mask_url(answered or '')}")
