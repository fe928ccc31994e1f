"""The CloudEvents 1.0 envelope: attributes around an event's data, and event ids."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "DecodeError",
    "Envelope",
    "JSON_CONTENT_TYPE",
    "SPECVERSION",
    "STRUCTURED_CONTENT_TYPE",
    "make_envelope",
    "new_envelope",
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
        if parsed.tzinfo is UTC:  # "...Z", as tidings writes it
            return parsed
        # In UTC now: a time at the edge of the calendar (year 1 at +23:59) cannot be, and
        # would fail later, when the envelope is written out again (a dead letter, a replay).
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"attribute 'time' is not an RFC 3339 timestamp: {value!r:.80}") from exc


_MAX_VERSION = 2**63 - 1


def _version(value: Any) -> int | None:
    """``dataversion`` as an int: an integer, an integral float (``2.0``) or decimal text
    (binary mode's headers); anything else (``1e999``, ``NaN``, ``1.5``, ``true``, a list,
    a number past 64 bits) is a `DecodeError`, never an OverflowError or a silent truncation."""
    if value is None or (type(value) is int and 0 <= value <= _MAX_VERSION):
        return value
    number: int | None = None
    if (
        type(value) is float
        and value.is_integer()
        or isinstance(value, str)
        and value.strip().isdecimal()
        and len(value) < 20
    ):
        number = int(value)
    elif type(value) is int:
        number = value
    if number is None or not 0 <= number <= _MAX_VERSION:
        raise DecodeError(f"attribute 'dataversion' is not an integer version: {value!r:.80}")
    return number


@dataclass(frozen=True, slots=True)
class Envelope:
    """The CloudEvents 1.0 attributes around an event's data (read-only).

    A handler reads the incoming event's envelope as ``ctx.envelope``; a publish middleware
    sees the outgoing one as ``message.envelope`` and may replace it with
    ``dataclasses.replace(envelope, subject=...)``. See the wire format reference for how
    it travels.

    Attributes:
        id: the event id (a UUID unless the publisher gave ``id=``); consumers dedupe on it.
        source: who published it, ``tidings://<host>/<program>`` unless the bus was given
            ``source=``.
        type: the event type, which is also the routing key (``order.placed``).
        specversion: the CloudEvents version, ``"1.0"``.
        time: when it was published (UTC), if known.
        datacontenttype: the media type of the data, ``application/json``.
        subject: optional CloudEvents subject (what the event is about).
        dataschema: optional URI of the data's schema.
        dataversion: the schema version of the data (the model's ``version``); None for
            messages from other producers, which count as version 1.
        correlationid: the id of the event that started the flow; set on every message a
            handler publishes through its context.
        causationid: the id of the event whose handler published this one.
        partitionkey: the ordering key it was published with, if any.
        traceparent: W3C trace context, carried from the causing event, if any.
        tracestate: W3C trace state, carried with ``traceparent``.
        extensions: other extension attributes received, by name.
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
        """The attributes as a JSON-ready dict (``time`` as RFC 3339 text), unset ones
        left out; `extensions` are merged in."""
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
        id_: Any = get("id")
        source: Any = get("source")
        type_: Any = get("type")
        if not (type(id_) is str and id_ and type(source) is str and source):
            _require_text(attrs)
        if not (type(type_) is str and type_):
            _require_text(attrs)
        version = _version(get("dataversion"))
        extensions = None
        if not _KNOWN_WITH_DATA.issuperset(attrs):  # the common case has no others
            extensions = {k: attrs[k] for k in attrs.keys() - _KNOWN_WITH_DATA}
        # Text attributes: taken as they are when they are text (the common case), else
        # turned into text.
        texts = list(map(get, _TEXTS))
        if not _TEXT_TYPES.issuperset(map(type, texts)):
            texts = [_text(v) for v in texts]
        spec, ctype, subject, schema, corr, cause, pkey, tparent, tstate = texts
        return make_envelope(
            id_,
            source,
            type_,
            spec or SPECVERSION,
            _parse_time(get("time")),
            ctype,
            subject,
            schema,
            version,
            corr,
            cause,
            pkey,
            tparent,
            tstate,
            extensions,
        )


_TEXTS = (
    "specversion",
    "datacontenttype",
    "subject",
    "dataschema",
    "correlationid",
    "causationid",
    "partitionkey",
    "traceparent",
    "tracestate",
)


_TEXT_TYPES = frozenset({str, type(None)})


def _require_text(attrs: Mapping[str, Any]) -> None:
    for required in ("id", "source", "type"):
        value = attrs.get(required)
        if not isinstance(value, str) or not value:
            raise DecodeError(f"CloudEvents attribute {required!r} is missing or not a string")


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


def new_envelope(
    *,
    id: str,
    source: str,
    type: str,
    time: datetime,
    dataversion: int | None,
    key: str | None,
    cause: Envelope | None,
) -> Envelope:
    """The envelope of a message being published now: JSON data, this bus's `source`, and,
    when it is published by a handler, the correlation and trace context of the event that
    `cause`d it (its correlation id, or its id when it has none; its id as causation id)."""
    return make_envelope(
        id,
        source,
        type,
        SPECVERSION,
        time,
        JSON_CONTENT_TYPE,
        None,
        None,
        dataversion,
        (cause.correlationid or cause.id) if cause is not None else None,
        cause.id if cause is not None else None,
        key,
        cause.traceparent if cause is not None else None,
        cause.tracestate if cause is not None else None,
        None,
    )
