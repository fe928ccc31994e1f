"""The RabbitMQ transport (``amqp://`` and ``amqps://``), on aio-pika."""

from __future__ import annotations

from ._transport import RabbitMQTransport

__all__ = ["RabbitMQTransport"]
