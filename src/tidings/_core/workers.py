"""The consuming side of a bus: one pipeline and one transport consumer per group, and the
dedupe store the idempotent groups share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from .._exceptions import ConfigError
from ..transports import Consumer, DedupeStore, Deliver, Delivery, Transport, TransportOptions
from .pipeline import Pipeline
from .publishing import Publisher
from .replies import Answers
from .stages import Transactions
from .subscription import Group

__all__ = ["Workers"]

logger = logging.getLogger(__name__)


class Workers:
    """The consumers a started bus runs.

    Args:
        transport: the open transport.
        options: the bus's common settings: its name (the dedupe store's key prefix), its
            clock, the external dedupe store (for transports without their own) and its TTL.
        publisher: the bus's publisher: its middleware (the consume side's too), its
            CloudEvents source (for foreign messages), and how it sends the messages a
            handler's context held.
        transactions: the bus's outbox, for transactional handlers (None without a
            database).
    """

    def __init__(
        self,
        transport: Transport,
        options: TransportOptions,
        publisher: Publisher,
        transactions: Transactions | None = None,
    ) -> None:
        self.transport = transport
        self.middleware = publisher.middleware
        self.flush = publisher.flush
        self.clock = options.clock
        self.source = publisher.source
        self.dedupe_url = options.dedupe_url
        self.dedupe_ttl = options.dedupe_ttl
        self.lease = options.lease
        self.namespace = options.name
        self.transactions = transactions
        self._consumers: list[Consumer] = []
        self._pipelines: list[Pipeline] = []
        self._dedupe: DedupeStore | None = None
        self.answers = Answers(
            lambda: transport,
            source=publisher.source,
            wire=publisher.wire,
            clock=options.clock,
            max_message_size=options.max_message_size,
        )

    async def start(self, groups: Iterable[Group], only: Sequence[str] | None = None) -> None:
        """Start a consumer for each of `groups` (those named in `only`, if given)."""
        for group in groups:
            if only and group.name not in only:
                continue
            pipeline = Pipeline(
                group,
                transport=self.transport,
                dedupe=self._dedupe_for(group),
                dedupe_ttl=self.dedupe_ttl,
                middleware=self.middleware,
                flush=self.flush,
                clock=self.clock,
                source=self.source,
                transactions=self.transactions,
                claim_lease=self.lease,
                answers=self.answers,
            )
            self._pipelines.append(pipeline)
            consumer = await self.transport.consume(group.spec(), _guarded(pipeline))
            self._consumers.append(consumer)

    def _dedupe_for(self, group: Group) -> DedupeStore | None:
        if not group.idempotent:
            return None
        if self._dedupe is None:
            self._dedupe = self.transport.dedupe_store() or self._external_dedupe()
        return self._dedupe

    def _external_dedupe(self) -> DedupeStore:
        if not self.dedupe_url:
            raise ConfigError(
                f"idempotent=True needs a dedupe store: the {self.transport.scheme}:// transport "
                "has none of its own; pass Bus(dedupe='redis://host:6379/0')"
            )
        from .dedupe import open_dedupe_store

        return open_dedupe_store(self.dedupe_url, namespace=self.namespace)

    async def stop(self, drain_timeout: float) -> None:
        """Stop every consumer (in-flight handlers get `drain_timeout` seconds), then release
        the pipelines and an external dedupe store."""
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.stop(drain_timeout) for c in consumers), return_exceptions=True)
        pipelines, self._pipelines = self._pipelines, []
        for pipeline in pipelines:
            await pipeline.close()
        if self._dedupe is not None and self._dedupe is not self.transport.dedupe_store():
            await self._dedupe.close()
        self._dedupe = None


def _guarded(pipeline: Pipeline) -> Deliver:
    """Wrap a pipeline so an unexpected error is logged and never takes the worker down."""

    async def deliver(delivery: Delivery) -> None:
        try:
            await pipeline(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "could not settle %s %s in %s; it returns to the group when its lease ends",
                delivery.type,
                delivery.id,
                delivery.group,
            )

    return deliver
