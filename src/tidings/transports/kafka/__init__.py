"""The Kafka transport (``kafka://host:port[,host:port]``), on aiokafka.

Importing this package imports no driver: `KafkaOptions` and `create_transport` work without
the ``kafka`` extra (options and the URL are checked before anything needs aiokafka), and
`KafkaTransport` is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..._exceptions import ConfigError
from .._options import split_options
from .._transport import Transport
from ._address import KafkaAddress
from ._names import Names
from ._options import KafkaOptions, from_query

if TYPE_CHECKING:
    from ._transport import KafkaTransport

__all__ = ["KafkaOptions", "KafkaTransport", "create_transport"]


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """The factory of ``kafka://`` URLs (see `tidings.transports.TransportFactory`).

    Raises:
        ConfigError: an option the transport does not know (as a keyword or in the URL's
            query), a bad option value, a malformed URL or a bus name that cannot name a
            Kafka topic (checked first, without importing aiokafka), or aiokafka is not
            installed.
    """
    address = KafkaAddress.parse(url)
    merged = {**from_query(address.options), **options}  # keyword options win over the URL's
    common, settings = split_options(merged, KafkaOptions, transport="kafka")
    Names(common.name)
    try:
        from ._transport import KafkaTransport
    except ImportError as exc:
        raise ConfigError(
            f"the kafka:// transport needs extra packages ({exc}): pip install 'tidings[kafka]'"
        ) from exc
    return KafkaTransport(url, common, settings)


def __getattr__(name: str) -> Any:
    # `KafkaTransport` on first use, so importing the package needs no driver.
    if name == "KafkaTransport":
        from ._transport import KafkaTransport

        return KafkaTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
