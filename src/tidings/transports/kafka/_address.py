"""``kafka://host:port[,host:port]`` URLs: the bootstrap servers, checked before connecting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from ..._exceptions import ConfigError
from .._urls import mask_url

__all__ = ["DEFAULT_PORT", "KafkaAddress"]

DEFAULT_PORT = 9092
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$")


@dataclass(frozen=True, slots=True)
class KafkaAddress:
    """The bootstrap servers of a ``kafka://`` URL.

    Attributes:
        servers: ``host:port`` of each bootstrap server, in the URL's order.
        url: the URL as given (shown masked in messages).
        options: transport options from the URL's query, as text.
    """

    servers: tuple[str, ...]
    url: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> KafkaAddress:
        """Check `url` and return its servers; a port defaults to 9092. A query gives
        transport options as text (``?session_timeout=2&partitions=3``), so they reach
        every process that gets the URL (``tidings run``, ``tidings demo``).

        Raises:
            ConfigError: not ``kafka://``, credentials, a path, a malformed query, an empty
                host list, a malformed host, or a port that is not a number from 1 to 65535.
        """
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() != "kafka":
            raise ConfigError(f"not a kafka:// URL: {mask_url(url)!r}")
        if "@" in rest:
            raise ConfigError(
                f"credentials in kafka:// URLs are not supported ({mask_url(url)!r}): "
                "the transport connects without SASL; give only kafka://host:port[,host:port]"
            )
        rest, _, query = rest.partition("?")
        hosts, _, tail = rest.partition("/")
        if tail or "#" in hosts or "#" in query:
            raise ConfigError(
                f"a kafka:// URL takes no path ({mask_url(url)!r}): "
                "use kafka://host:port[,host:port][?option=value&...]"
            )
        servers = tuple(cls._server(part.strip(), url) for part in hosts.split(","))
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError as exc:
            raise ConfigError(f"malformed query in {mask_url(url)!r}: {exc}") from exc
        return cls(servers, url, dict(pairs))

    @staticmethod
    def _server(part: str, url: str) -> str:
        if not part:
            raise ConfigError(f"empty host in {mask_url(url)!r}: use kafka://host:port[,host:port]")
        host, port = part, str(DEFAULT_PORT)
        if part.startswith("["):
            close = part.find("]")
            host, after = part[: close + 1], part[close + 1 :]
            if after:
                if not after.startswith(":"):
                    raise ConfigError(f"malformed host {part!r} in {mask_url(url)!r}")
                port = after[1:]
        elif ":" in part:
            host, port = part.rsplit(":", 1)
        if not _HOST.match(host):
            raise ConfigError(f"malformed host {host!r} in {mask_url(url)!r}")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(
                f"bad port {port!r} in {mask_url(url)!r}: use a number from 1 to 65535"
            )
        return f"{host}:{int(port)}"

    @property
    def bootstrap(self) -> str:
        """The servers as aiokafka takes them (comma-separated ``host:port``)."""
        return ",".join(self.servers)

    def __str__(self) -> str:
        return "kafka://" + self.bootstrap
