"""The RabbitMQ transport (``amqp://`` and ``amqps://``), on aio-pika.

Importing this package imports no driver: `RabbitMQOptions` and `create_transport` work
without the ``rabbitmq`` extra (options and the URL are checked before anything needs
aio-pika), and `RabbitMQTransport` is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..._exceptions import ConfigError
from .._options import split_options
from .._transport import Transport
from ._address import AmqpAddress
from ._options import RabbitMQOptions

if TYPE_CHECKING:
    from ._transport import RabbitMQTransport

__all__ = ["RabbitMQOptions", "RabbitMQTransport", "create_transport"]


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """The factory of ``amqp://`` and ``amqps://`` URLs (see
    `tidings.transports.TransportFactory`).

    Raises:
        ConfigError: an option the transport does not know, a bad option value, a port
            that is not a number from 1 to 65535 or a host that cannot be parsed (checked
            first, without importing aio-pika), or aio-pika is not installed.
    """
    common, settings = split_options(options, RabbitMQOptions, transport="rabbitmq")
    AmqpAddress.parse(url).management(settings.management_url)
    try:
        from ._transport import RabbitMQTransport
    except ImportError as exc:
        scheme = url.split("://", 1)[0].lower()
        raise ConfigError(
            f"the {scheme}:// transport needs extra packages ({exc}): "
            "pip install 'tidings[rabbitmq]'"
        ) from exc
    return RabbitMQTransport(url, common, settings)


def __getattr__(name: str) -> Any:
    # `RabbitMQTransport` on first use, so importing the package needs no driver.
    if name == "RabbitMQTransport":
        from ._transport import RabbitMQTransport

        return RabbitMQTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
