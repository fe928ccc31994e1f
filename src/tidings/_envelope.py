"""The CloudEvents 1.0 envelope and its JSON codec (structured and binary modes).

Structured mode puts the attributes and the data in one JSON object
(``application/cloudevents+json``). Binary mode puts the attributes in ``ce-`` headers and
the data alone in the body. Decoding accepts both, and foreign messages too: a plain JSON body
whose type comes from the routing key and whose id comes from the transport's message id, or
else from a hash of routing key and body (stable across redeliveries).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pydantic_core import from_json, to_json

__all__ = [
    "JSON_CONTENT_TYPE",
    "SPECVERSION",
    "STRUCTURED_CONTENT_TYPE",
    "DecodeError",
    "Envelope",
    "decode",
    "decode_with_mode",
    "encode",
    "make_envelope",
    "new_event_id",
]

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
SPECVERSION = "1.0"

_CORE = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "datacontenttype",
    "subject",
    "dataschema",
)
_EXTENSIONS = (
    "dataversion",
    "correlationid",
    "causationid",
    "partitionkey",
    "traceparent",
    "tracestate",
)
_KNOWN = frozenset(_CORE + _EXTENSIONS)
_KNOWN_WITH_DATA = _KNOWN | {"data", "data_base64"}


class DecodeError(ValueError):
    """A message body could not be decoded; the message goes to the dead-letter queue."""


class _RandomPool:
    """Random bytes read from the OS in blocks: one ``os.urandom`` call per 256 ids instead
    of one each (the call dominates publishing cost on some virtual machines)."""

    BLOCK = 16 * 256

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        os.register_at_fork(after_in_child=self.reset)  # a child must never reuse our bytes

    def reset(self) -> None:
        self._buf, self._pos = b"", 0

    def take16(self) -> bytes:
        if self._pos + 16 > len(self._buf):
            self._buf, self._pos = os.urandom(self.BLOCK), 0
        chunk = self._buf[self._pos : self._pos + 16]
        self._pos += 16
        return chunk


_pool = _RandomPool()


def new_event_id() -> str:
    """A fresh event id: a random (version 4) UUID string."""
    raw = bytearray(_pool.take16())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _format_time(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(f"attribute 'time' must be an RFC 3339 string, not {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DecodeError(f"attribute 'time' is not an RFC 3339 timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The CloudEvents attributes around an event's data (read-only).

    Core attributes are ``id``, ``source``, ``type``, ``specversion``, ``time``,
    ``datacontenttype``, ``subject``, ``dataschema``; tidings adds the extension attributes
    ``dataversion`` (schema version), ``correlationid``, ``causationid``, ``partitionkey``,
    ``traceparent`` and ``tracestate``. Other extension attributes are kept in `extensions`.
    """

    id: str
    source: str
    type: str
    specversion: str = SPECVERSION
    time: datetime | None = None
    datacontenttype: str | None = JSON_CONTENT_TYPE
    subject: str | None = None
    dataschema: str | None = None
    dataversion: int | None = None
    correlationid: str | None = None
    causationid: str | None = None
    partitionkey: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        """The attributes as a JSON-ready dict, unset ones left out."""
        out: dict[str, Any] = {"specversion": self.specversion, "id": self.id}
        out["source"] = self.source
        out["type"] = self.type
        if self.time is not None:
            out["time"] = _format_time(self.time)
        for name in ("datacontenttype", "subject", "dataschema", *_EXTENSIONS):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name, value in self.extensions.items():
            out.setdefault(name, value)
        return out

    @classmethod
    def from_attributes(cls, attrs: Mapping[str, Any]) -> Envelope:
        """Build an envelope from decoded attributes; raise `DecodeError` if required ones
        are missing or malformed."""
        get = attrs.get
        for required in ("id", "source", "type"):
            value = get(required)
            if not isinstance(value, str) or not value:
                raise DecodeError(f"CloudEvents attribute {required!r} is missing or not a string")
        version = get("dataversion")
        if version is not None and type(version) is not int:
            try:
                version = int(version)
            except (TypeError, ValueError) as exc:
                raise DecodeError(
                    f"attribute 'dataversion' is not an integer: {version!r}"
                ) from exc
        unknown = attrs.keys() - _KNOWN_WITH_DATA
        extensions = {k: attrs[k] for k in unknown} if unknown else None
        return make_envelope(
            attrs["id"],
            attrs["source"],
            attrs["type"],
            _text(get("specversion")) or SPECVERSION,
            _parse_time(get("time")),
            _text(get("datacontenttype")),
            _text(get("subject")),
            _text(get("dataschema")),
            version,
            _text(get("correlationid")),
            _text(get("causationid")),
            _text(get("partitionkey")),
            _text(get("traceparent")),
            _text(get("tracestate")),
            extensions,
        )


_NEW = object.__new__
_EMPTY: Mapping[str, Any] = MappingProxyType({})
(
    _SET_ID,
    _SET_SOURCE,
    _SET_TYPE,
    _SET_SPECVERSION,
    _SET_TIME,
    _SET_DATACONTENTTYPE,
    _SET_SUBJECT,
    _SET_DATASCHEMA,
    _SET_DATAVERSION,
    _SET_CORRELATIONID,
    _SET_CAUSATIONID,
    _SET_PARTITIONKEY,
    _SET_TRACEPARENT,
    _SET_TRACESTATE,
    _SET_EXTENSIONS,
) = (Envelope.__dict__[f.name].__set__ for f in fields(Envelope))


def make_envelope(
    id: str,
    source: str,
    type: str,
    specversion: str,
    time: datetime | None,
    datacontenttype: str | None,
    subject: str | None,
    dataschema: str | None,
    dataversion: int | None,
    correlationid: str | None,
    causationid: str | None,
    partitionkey: str | None,
    traceparent: str | None,
    tracestate: str | None,
    extensions: Mapping[str, Any] | None,
) -> Envelope:
    """Build an `Envelope` without the frozen dataclass's per-field ``__setattr__`` checks
    (a third of the cost of publishing a small event); the result is the same frozen
    object. Arguments are positional, in field order."""
    env = _NEW(Envelope)
    _SET_ID(env, id)
    _SET_SOURCE(env, source)
    _SET_TYPE(env, type)
    _SET_SPECVERSION(env, specversion)
    _SET_TIME(env, time)
    _SET_DATACONTENTTYPE(env, datacontenttype)
    _SET_SUBJECT(env, subject)
    _SET_DATASCHEMA(env, dataschema)
    _SET_DATAVERSION(env, dataversion)
    _SET_CORRELATIONID(env, correlationid)
    _SET_CAUSATIONID(env, causationid)
    _SET_PARTITIONKEY(env, partitionkey)
    _SET_TRACEPARENT(env, traceparent)
    _SET_TRACESTATE(env, tracestate)
    _SET_EXTENSIONS(env, extensions if extensions else _EMPTY)
    return env


def _text(value: Any) -> str | None:
    return value if value is None or type(value) is str else str(value)


def encode(envelope: Envelope, data_json: bytes, wire: str) -> tuple[bytes, str, dict[str, str]]:
    """Encode an envelope and its JSON data; return ``(body, content_type, headers)``.

    `wire` is ``"structured"`` (one JSON object) or ``"binary"`` (``ce-`` headers, data in
    the body).
    """
    if wire == "binary":
        attrs = envelope.attributes()
        headers = {f"ce-{k}": v if isinstance(v, str) else json.dumps(v) for k, v in attrs.items()}
        headers.pop("ce-datacontenttype", None)
        return data_json, envelope.datacontenttype or JSON_CONTENT_TYPE, headers
    return _structured(envelope, data_json), STRUCTURED_CONTENT_TYPE, {}


_PREFIXES: dict[tuple[str, str, str, str | None, int | None], bytes] = {}
_OPTIONAL = (
    "subject",
    "dataschema",
    "correlationid",
    "causationid",
    "partitionkey",
    "traceparent",
    "tracestate",
)


def _structured(env: Envelope, data_json: bytes) -> bytes:
    """One JSON object: the attributes that rarely change per type come from a cached
    prefix; the per-event ones are appended."""
    key = (env.specversion, env.source, env.type, env.datacontenttype, env.dataversion)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        fixed: dict[str, Any] = {"specversion": env.specversion, "source": env.source}
        fixed["type"] = env.type
        if env.datacontenttype is not None:
            fixed["datacontenttype"] = env.datacontenttype
        if env.dataversion is not None:
            fixed["dataversion"] = env.dataversion
        prefix = to_json(fixed)[:-1]
        if len(_PREFIXES) > 1024:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    parts = [prefix, b',"id":', to_json(env.id)]
    if env.time is not None:
        parts += (b',"time":"', _format_time(env.time).encode(), b'"')
    for name in _OPTIONAL:
        value = getattr(env, name)
        if value is not None:
            parts += (b',"', name.encode(), b'":', to_json(value))
    if env.extensions:
        extra = {k: v for k, v in env.extensions.items() if k not in _KNOWN_WITH_DATA}
        if extra:
            parts.append(b"," + to_json(extra)[1:-1])
    parts += (b',"data":', data_json, b"}")
    return b"".join(parts)


def foreign_id(routing_key: str, body: bytes) -> str:
    """Stable id of a foreign message without a message id: a hash of key and body."""
    digest = hashlib.sha256(routing_key.encode() + b"\x00" + body).hexdigest()
    return f"sha256:{digest[:32]}"


def decode(
    *,
    routing_key: str,
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, str],
    message_id: str | None,
    source: str = "unknown",
) -> tuple[Envelope, Any]:
    """Decode a message into ``(envelope, data)``; raise `DecodeError` when it cannot be."""
    envelope, data, _ = decode_with_mode(
        routing_key=routing_key,
        body=body,
        content_type=content_type,
        headers=headers,
        message_id=message_id,
        source=source,
    )
    return envelope, data


def decode_with_mode(
    *,
    routing_key: str,
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, str],
    message_id: str | None,
    source: str = "unknown",
) -> tuple[Envelope, Any, str]:
    """Like `decode`, also telling the mode: ``structured``, ``binary`` or ``foreign``."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    try:
        parsed = from_json(body) if body else None
    except ValueError as exc:
        raise DecodeError(f"body is not JSON ({exc})") from exc
    if ctype == STRUCTURED_CONTENT_TYPE or (
        isinstance(parsed, dict) and "specversion" in parsed and ctype != JSON_CONTENT_TYPE
    ):
        if not isinstance(parsed, dict):
            raise DecodeError("structured CloudEvent body is not a JSON object")
        return Envelope.from_attributes(parsed), parsed.get("data"), "structured"
    ce_headers = {k[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}
    if ce_headers:
        attrs: dict[str, Any] = dict(ce_headers)
        attrs.setdefault("datacontenttype", content_type or JSON_CONTENT_TYPE)
        return Envelope.from_attributes(attrs), parsed, "binary"
    # A foreign message: plain JSON from another producer.
    return (
        Envelope(
            id=message_id or foreign_id(routing_key, body),
            source=source,
            type=routing_key,
            datacontenttype=content_type or JSON_CONTENT_TYPE,
        ),
        parsed,
        "foreign",
    )
