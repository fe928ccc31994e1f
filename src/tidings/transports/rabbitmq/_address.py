"""The broker's address: an AMQP URL checked before anything connects, and the management
API's URL derived from it.

AMQP URI rules (RabbitMQ's URI spec): every part may be left out; the host defaults to
``localhost``, the port to 5672 (5671 for ``amqps``), the user and password to ``guest``, the
virtual host to ``/``. A port that is not a number from 1 to 65535 or a host that cannot be
parsed is a `ConfigError` at once, never a connect attempt retried forever. This module
imports no driver.

Several nodes of a cluster may share one URL, comma-separated:
``amqp://user:pass@h1:5672,h2:5672,h3:5672/vhost`` (each with its own port, or the scheme's
default); the transport connects to the first that answers and fails over to the others.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ..._exceptions import ConfigError
from .._urls import mask_url

__all__ = ["MANAGEMENT_PORT", "AmqpAddress", "ManagementAddress"]

MANAGEMENT_PORT = {"amqp": 15672, "amqps": 15671}
"""The management plugin's default port, by AMQP scheme (``https`` on 15671 next to TLS)."""

_HOST_PUNCTUATION = frozenset("-._~%")
_PASSWORD = re.compile(r"(//[^:/@\s]*):[^@/\s]*@")


def _masked(url: str) -> str:
    # `mask_url` reads the port, which raises on the very ports refused here.
    try:
        return mask_url(url)
    except ValueError:
        return _PASSWORD.sub(r"\1:***@", url)


def _check_host(host: str, url: str) -> None:
    if host.startswith("["):
        host = host[1:-1]
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return
    if not all(ch.isalnum() or ch in _HOST_PUNCTUATION for ch in host):
        raise ConfigError(
            f"cannot parse the host {host!r} of {_masked(url)}: "
            "give a host name or an IP address (IPv6 in brackets: amqp://[::1]:5672/)"
        )


def _split_hosts(url: str) -> tuple[str, list[tuple[str, int | None]]]:
    """The URL with only its first host (what `urlsplit` can read) and every
    ``(host, port)`` of its comma-separated host list.

    Raises:
        ValueError: a port that is not a number from 0 to 65535, or an empty host entry.
    """
    parts = urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    entries = hostlist.split(",")
    hosts: list[tuple[str, int | None]] = []
    for entry in entries:
        if not entry and len(entries) > 1:
            raise ValueError("an empty host in the host list")
        one = urlsplit(f"//{entry}")
        hosts.append((one.hostname or "", one.port))
    netloc = f"{userinfo}{at}{entries[0]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), hosts


@dataclass(frozen=True, slots=True)
class AmqpAddress:
    """An ``amqp://`` or ``amqps://`` URL, checked and with its defaults filled in.

    Attributes:
        url: the URL as given (for messages, masked).
        scheme: ``amqp`` or ``amqps``.
        host: the host (``localhost`` when the URL has none).
        port: the AMQP port (5672, or 5671 for ``amqps``, when the URL has none).
        user: the user name (``guest`` when the URL has none).
        password: the password (``guest`` when the URL has none).
        vhost: the virtual host (``/`` when the URL has no path).
        hosts: every ``(host, port)`` of the URL, in order (one, unless the URL lists
            several nodes); `host` and `port` are the first.
    """

    url: str
    scheme: str
    host: str
    port: int
    user: str
    password: str
    vhost: str
    hosts: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, url: str) -> AmqpAddress:
        """Check `url` and fill in the defaults.

        Raises:
            ConfigError: not an AMQP URL, a bad port or a host that cannot be parsed, in
                one line with the password masked.
        """
        try:
            first, listed = _split_hosts(url)
            parts = urlsplit(first)
        except ValueError as exc:
            raise ConfigError(
                f"cannot parse the RabbitMQ URL {_masked(url)}: {exc}; expected "
                "amqp://host:port/vhost (credentials before the host) with a port from 1 to 65535"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in MANAGEMENT_PORT:
            raise ConfigError(f"{_masked(url)} is not an amqp:// or amqps:// URL")
        default = 5671 if scheme == "amqps" else 5672
        hosts: list[tuple[str, int]] = []
        for name, number in listed:
            if number == 0:
                raise ConfigError(f"port 0 in {_masked(url)}: give a port from 1 to 65535")
            if not name and len(listed) > 1:
                raise ConfigError(f"a host without a name in {_masked(url)}: name every host")
            _check_host(name or "localhost", url)
            hosts.append((name or "localhost", number or default))
        return cls(
            url=url,
            scheme=scheme,
            host=hosts[0][0],
            port=hosts[0][1],
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
            hosts=tuple(hosts),
        )

    def driver_url(self, index: int = 0) -> str:
        """The URL for the client library of host number `index` (the first by default):
        the given URL with that one host and its port filled in (aio-pika cannot connect to
        ``amqp://`` without a host, nor to a list of hosts)."""
        parts = urlsplit(self.url)
        userinfo = parts.netloc.rpartition("@")[0]
        name, port = self.hosts[index] if self.hosts else (self.host, self.port)
        host = f"[{name}]" if ":" in name else name
        netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def driver_urls(self) -> list[str]:
        """`driver_url` of every host, in the URL's order."""
        return [self.driver_url(n) for n in range(max(1, len(self.hosts)))]

    def where(self, index: int = 0) -> str:
        """``host:port`` of host number `index`, for messages."""
        name, port = self.hosts[index] if self.hosts else (self.host, self.port)
        return f"{name}:{port}"

    def management(self, given: str | None) -> ManagementAddress:
        """The management API's address: `given` (credentials in it win), else
        ``http://<host>:15672`` (``https://<host>:15671`` for ``amqps``); the credentials
        and virtual host of the AMQP URL otherwise."""
        if given:
            try:
                parts = urlsplit(given)
                port = parts.port
            except ValueError as exc:
                raise ConfigError(f"cannot parse management_url {_masked(given)}: {exc}") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"management_url {_masked(given)} is not an http:// or https:// URL"
                )
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            netloc = f"{host}:{port}" if port else host
            base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
            user = unquote(parts.username) if parts.username else self.user
            password = unquote(parts.password) if parts.password is not None else self.password
        else:
            scheme = "https" if self.scheme == "amqps" else "http"
            host = f"[{self.host}]" if ":" in self.host else self.host
            base = f"{scheme}://{host}:{MANAGEMENT_PORT[self.scheme]}"
            user, password = self.user, self.password
        return ManagementAddress(base=base, user=user, password=password, vhost=self.vhost)


@dataclass(frozen=True, slots=True)
class ManagementAddress:
    """Where the management API answers and who logs in.

    Attributes:
        base: its base URL, without credentials (``http://host:15672``).
        user: the user name (from the management URL, else the AMQP URL).
        password: the password (likewise).
        vhost: the virtual host whose queues are listed.
    """

    base: str
    user: str
    password: str
    vhost: str

    @property
    def vhost_path(self) -> str:
        """The virtual host as one path segment (``/`` is ``%2F``)."""
        return quote(self.vhost, safe="")
