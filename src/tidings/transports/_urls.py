"""Masking passwords in URLs for logs and errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["mask_url"]


_LOOSE_CREDENTIALS = re.compile(r"([^:/@\s]*):[^@/\s]*@")


def mask_url(url: str) -> str:
    """`url` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or not parts.netloc:
        # Not a well-formed URL (e.g. "admin:secret@host"): mask anything like user:pass@.
        return _LOOSE_CREDENTIALS.sub(r"\1:***@", url)
    if parts.password is None:
        return url
    # The host part as written (a bad port such as ":notaport" is kept as is, not parsed).
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
