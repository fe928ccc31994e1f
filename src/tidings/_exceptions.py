"""The exceptions tidings raises, in one tree.

```
TidingsError
├── ConfigError            a bad URL, option, file or registration
├── BrokerUnavailable      the broker cannot be reached or used right now
├── Unroutable             no group receives what was published or sent
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

__all__ = [
    "BrokerUnavailable",
    "ConfigError",
    "DeadLetterNotFound",
    "MessageTooLarge",
    "NotSupported",
    "Permanent",
    "StateError",
    "TidingsError",
    "Unroutable",
]


class TidingsError(Exception):
    """Root of every error tidings raises."""


class ConfigError(TidingsError):
    """A bad URL, option, database file or handler registration."""


class BrokerUnavailable(TidingsError):
    """The broker cannot be reached, or refused the operation for a reason outside our control."""


class Unroutable(TidingsError):
    """A published event matched no group, or a command was sent to a group that does not exist."""


class MessageTooLarge(TidingsError):
    """An encoded message is larger than the bus's ``max_message_size``."""


class NotSupported(TidingsError):
    """The transport does not have the capability asked for (e.g. replay from a log)."""


class StateError(TidingsError):
    """The bus was used in the wrong lifecycle state (opened twice, used after close)."""


class DeadLetterNotFound(TidingsError, LookupError):
    """No dead letter with the given entry id exists in the group."""


class Permanent(TidingsError):
    """Raised by a handler to dead-letter the event at once, without further retries.

    Use it for failures a retry cannot fix: a declined card, a reference to something that
    does not exist, a business rule the event breaks.
    """
