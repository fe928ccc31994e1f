"""CloudEvents JSON encoding and decoding, structured and binary modes, and foreign messages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json, to_json

from .envelope import (
    _KNOWN_WITH_DATA,
    JSON_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    DecodeError,
    Envelope,
    _format_time,
)

__all__ = ["decode", "decode_with_mode", "encode", "foreign_id"]


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
