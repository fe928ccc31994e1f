"""SQLite errors of the embedded broker, told apart and translated into tidings' own.

Every error that leaves the transport names the file and says what to do. A full disk is
said as such when it is found: SQLite reports it as "database or disk is full" for a page it
cannot write, but as an I/O error when it cannot size the ``-shm`` file, and the operating
system as ``ENOSPC`` when the file cannot even be created; those are checked against the
free space of the file's file system.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ..._exceptions import BrokerUnavailable, ConfigError, TidingsError

__all__ = [
    "LockTimeout",
    "disk_full",
    "is_busy",
    "is_environmental",
    "translate_error",
    "translate_os_error",
]

# Primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _CORRUPT = 5, 6, 7, 8, 10, 11
_FULL, _CANTOPEN, _PERM, _AUTH, _NOTADB = 13, 14, 3, 23, 26
_ENVIRONMENTAL = {_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN}
_ENVIRONMENTAL |= {_PERM, _AUTH, _NOTADB}

_LOW_SPACE = 256 * 1024
"""Free bytes under which an I/O error on opening is taken for a full disk: SQLite needs
a few pages and a 32 KiB ``-shm`` file to open a file in WAL mode."""

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class LockTimeout(Exception):
    """Another process held the write lock for longer than the busy timeout."""


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_busy(exc: BaseException) -> bool:
    """True when `exc` says another connection holds a lock we need."""
    return isinstance(exc, sqlite3.Error) and _code(exc) in (_BUSY, _LOCKED)


def is_environmental(exc: BaseException) -> bool:
    """True when `exc` comes from the file or the machine, not from one operation's data.

    Such an error fails a whole write batch at once; retrying it op by op would not help.
    """
    if isinstance(exc, LockTimeout | BrokerUnavailable):
        return True
    return isinstance(exc, sqlite3.Error) and _code(exc) in _ENVIRONMENTAL


def disk_full(path: Path) -> bool:
    """True when the file system holding `path` has (next to) no space left for us."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _LOW_SPACE


def _full_on_open(path: Path, text: str) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"cannot open {path}: the disk is full ({text}); free space on its file system, "
        "then start again"
    )


def translate_os_error(exc: OSError, path: Path) -> TidingsError:
    """The error for an `OSError` met while creating or opening `path`."""
    if exc.errno in _NO_SPACE:
        return _full_on_open(path, exc.strerror or "no space left on device")
    return ConfigError(f"cannot create {path} ({exc.strerror})")


def translate_error(exc: BaseException, path: Path, *, opening: bool = False) -> TidingsError:
    """Turn a driver error into a one-line tidings error that names the file.

    With `opening`, the error happened while opening or creating the file (or migrating its
    schema): a full disk then says the file cannot be opened because of it.
    """
    if isinstance(exc, TidingsError):
        return exc
    if isinstance(exc, LockTimeout):
        return BrokerUnavailable(f"database {path} is locked by another process ({exc})")
    if not isinstance(exc, sqlite3.Error):
        return BrokerUnavailable(f"database {path}: {type(exc).__name__}: {exc}")
    code = _code(exc)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if opening and (code == _FULL or (code in (_IOERR, _CANTOPEN) and disk_full(path))):
        return _full_on_open(path, text)
    if code == _NOTADB:
        return ConfigError(f"{path} is not a SQLite database ({text})")
    if code == _CORRUPT:
        cls = ConfigError if opening else BrokerUnavailable
        return cls(f"database {path} is corrupt ({text})")
    if code in (_BUSY, _LOCKED):
        return BrokerUnavailable(f"database {path} is locked by another process ({text})")
    if code == _FULL:
        return BrokerUnavailable(
            f"disk full writing {path} ({text}); free space on its file system"
        )
    if code in (_READONLY, _PERM, _AUTH, _CANTOPEN):
        return ConfigError(f"cannot write to {path} ({text})")
    if code == _IOERR:
        return BrokerUnavailable(f"I/O error on {path} ({text})")
    return BrokerUnavailable(f"database {path}: {text}")
