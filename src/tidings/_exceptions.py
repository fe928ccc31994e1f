"""The exceptions tidings raises, in one tree.

```
TidingsError
├── ConfigError            a bad URL, option, file or registration
├── BrokerUnavailable      the broker cannot be reached or used right now
├── Unroutable             no group receives what was published or sent
├── QueueFull              a group is at its ``max_ready`` bound; nothing more is taken
├── MessageTooLarge        the encoded message is over ``max_message_size``
├── NotSupported           the transport lacks the capability asked for
├── StateError             a bus used in the wrong lifecycle state
├── DeadLetterNotFound     no dead letter with that entry id
└── Permanent              raised by a handler: dead-letter at once, no retry
```

Driver errors (``sqlite3``, ``aiormq``) are translated into these at the transport
boundary, with the file, queue or URL (password masked) in the message.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BrokerUnavailable",
    "ConfigError",
    "DeadLetterNotFound",
    "MessageTooLarge",
    "NotSupported",
    "Permanent",
    "QueueFull",
    "RemoteError",
    "RequestTimeout",
    "StateError",
    "TidingsError",
    "Unroutable",
]


class TidingsError(Exception):
    """Root of every error tidings raises: ``except TidingsError`` catches them all."""


class ConfigError(TidingsError):
    """A mistake in how tidings is set up, found before or without a broker call.

    A bad or unknown URL scheme, an option a transport does not take (named in the
    message, with the ones it does), a bad option value, a handler that cannot be
    registered, a broker file that is not tidings' own. Fix the code or the configuration;
    retrying cannot help.
    """


class BrokerUnavailable(TidingsError):
    """The broker cannot be reached, or refused the operation for a reason outside our control.

    A publish that raises it may not have been made durable: publish again (with the same
    ``id=`` if consumers dedupe). A handler's `Context` publishes that hit it fail the
    attempt, which is retried.
    """


class Unroutable(TidingsError):
    """A published event matched no group, or a command was sent to a group that does not exist.

    Raised by `Bus.publish`, `Bus.publish_many` and `Bus.send` unless the bus was made with
    ``on_unroutable="ignore"``. Groups exist once a bus that subscribes to them has been
    opened (a worker started, or ``await bus.declare()``): start the workers before the
    publishers.

    Attributes:
        sent_ids: ids of the messages of the same call that did reach a group (a batch on a
            broker that cannot refuse it whole).
        unroutable_ids: ids of the messages that reached no group.
    """

    def __init__(
        self,
        message: str,
        *,
        sent_ids: Sequence[str] = (),
        unroutable_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.sent_ids: list[str] = list(sent_ids)
        self.unroutable_ids: list[str] = list(unroutable_ids)


class QueueFull(TidingsError):
    """A group the publish would reach holds `max_ready` ready messages already.

    Raised at once, without waiting for room (backpressure: slow the producer, or add
    consumers). On the embedded broker and ``memory://`` nothing was stored; on RabbitMQ the
    event may have reached the groups that were not full (``.groups`` names the full ones):
    publishing it again with the same ``id=`` is absorbed by idempotent groups.

    Attributes:
        groups: the names of the full groups.
    """

    def __init__(self, message: str, *, groups: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.groups: list[str] = list(groups)


class MessageTooLarge(TidingsError):
    """An encoded message is larger than the bus's ``max_message_size``.

    Nothing was published (for `Bus.publish_many`, nothing of the batch). Send a reference
    to large data (a URL, a key in object storage) instead, or raise the limit.
    """


class NotSupported(TidingsError):
    """The transport does not have the capability asked for.

    For example `Bus.replay` on a transport that keeps no log of published events
    (``memory://``, RabbitMQ).
    """


class StateError(TidingsError):
    """The bus was used in the wrong lifecycle state.

    Subscribing after the bus was opened, opening it twice, publishing before it was
    opened or after it was closed.
    """


class DeadLetterNotFound(TidingsError, LookupError):
    """No dead letter with the given entry id exists in the group.

    Raised by `DeadLetters.get`. Also a `LookupError`.
    """


class Permanent(TidingsError):
    """Raised by a handler to dead-letter the event at once, without further retries.

    Use it for failures a retry cannot fix: a declined card, a reference to something that
    does not exist, a business rule the event breaks.
    """


class RequestTimeout(TidingsError, TimeoutError):
    """No reply to `Bus.request` came within its timeout. Also a `TimeoutError`.

    The request may still be handled later (it stays in its group until then, retries
    included); its late reply is dropped.

    Attributes:
        request_id: the id of the request that got no reply.
        to: the group it was sent to.
        timeout: the seconds waited.
    """

    def __init__(self, message: str, *, request_id: str, to: str, timeout: float) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.to = to
        self.timeout = timeout


class RemoteError(TidingsError):
    """The handler of a `Bus.request` failed for good (its retries exhausted, `Permanent`,
    or a message it could not decode): the request is in the group's dead-letter queue.

    Attributes:
        exception_type: the qualified name of the handler's exception
            (``"myapp.errors.OutOfStock"``), or None when no exception was raised (the
            request could not be decoded, say).
        message: the exception's message, or the one-line reason it was dead-lettered.
        request_id: the id of the request.
    """

    def __init__(
        self, message: str, *, exception_type: str | None, remote_message: str, request_id: str
    ) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = remote_message
        self.request_id = request_id
