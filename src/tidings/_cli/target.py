"""Where an application's bus is: a ``MODULE:attribute`` target, imported, never started.

``MODULE`` is a dotted module, imported with the current directory on `sys.path` (like
uvicorn), or a file path (``path/to/app.py``, absolute or relative), imported from its own
directory with that directory put on `sys.path`, so the file's sibling modules import as
they do when it runs as a script. The attribute defaults to ``bus`` and may be dotted.

Every way a target can be wrong, a failure while its module runs included, is a
`ConfigError` of one line; the traceback of a failing module is logged at DEBUG.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType

from .. import Bus, ConfigError

__all__ = ["load_bus"]

logger = logging.getLogger(__name__)

# ``module:attr``: the attribute is what follows the last colon, when that is a dotted name
# (so ``C:\apps\shop.py`` is a path, not the module ``C`` and the attribute ``\apps...``).
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _split(target: str) -> tuple[str, str]:
    """``(module or path, attribute)`` of `target`, the attribute defaulting to ``bus``."""
    head, colon, tail = target.strip().rpartition(":")
    if colon and (not tail.strip() or _DOTTED.fullmatch(tail.strip())):
        return head.strip(), tail.strip() or "bus"
    return target.strip(), "bus"


def _is_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def _failure(where: str, exc: BaseException) -> ConfigError:
    """One line for an exception raised while `where` ran, naming the line that raised."""
    logger.debug("importing %s failed", where, exc_info=exc)
    if isinstance(exc, SyntaxError):
        place = f" ({exc.filename}, line {exc.lineno})" if exc.filename else ""
        detail = f"SyntaxError: {exc.msg}"
    else:
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")
        ]
        place = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
        text = str(exc)
        detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return ConfigError(
        f"importing {where} failed: {detail}{place} (--log-level debug shows the traceback)"
    )


def _import_module(name: str) -> ModuleType:
    """Import the dotted module `name` with the current directory on `sys.path`."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(
                f"cannot import module {name!r}: no such module in {cwd} or on sys.path "
                "(give a file path like path/to/app.py:bus for a file elsewhere)"
            ) from None
        raise ConfigError(f"cannot import module {name!r}: {exc}") from None
    except Exception as exc:
        raise _failure(f"module {name!r}", exc) from None


def _import_file(given: str) -> ModuleType:
    """Import the file `given` (or package directory) as a top-level module, from its own
    directory, which goes first on `sys.path`."""
    path = Path(given).expanduser().absolute()
    source = path / "__init__.py" if path.is_dir() else path
    if not source.is_file():
        raise ConfigError(f"cannot import {given}: no such file")
    name = path.stem if path.is_file() else path.name
    if not name.isidentifier():
        raise ConfigError(f"cannot import {given}: {name!r} is not a valid module name")
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").absolute() == source:
            return loaded
        raise ConfigError(
            f"cannot import {given} as module {name!r}: a module of that name is already "
            f"loaded from {getattr(loaded, '__file__', None) or 'elsewhere'}; rename the file"
        )
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    packages = [str(path)] if path.is_dir() else None
    spec = importlib.util.spec_from_file_location(name, source, submodule_search_locations=packages)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise ConfigError(f"cannot import {given}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: models and dataclasses look it up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _failure(given, exc) from None
    return module


def load_bus(target: str) -> Bus:
    """The `Bus` that ``MODULE:attribute`` names (see the module's docstring), imported
    without starting it."""
    module_name, attr = _split(target)
    if not module_name:
        raise ConfigError(
            f"bad target {target!r}: use module:attribute (app.workers:bus) "
            "or a file path (path/to/app.py:bus)"
        )
    if _is_path(module_name):
        obj: object = _import_file(module_name)
        where = module_name
    elif _DOTTED.fullmatch(module_name):
        obj = _import_module(module_name)
        where = f"module {module_name!r}"
    else:
        raise ConfigError(
            f"bad target {target!r}: {module_name!r} is neither a dotted module name "
            "nor a path to a .py file"
        )
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where} has no attribute {attr!r}") from None
    if not isinstance(obj, Bus):
        raise ConfigError(f"{module_name}:{attr} is a {type(obj).__name__}, not a tidings.Bus")
    return obj
