"""Metrics and traces of a bus: `Prometheus` and `OpenTelemetry` middleware.

```python
from tidings import Bus
from tidings.observability import OpenTelemetry, Prometheus

URL = "amqp://guest:guest@localhost/"
bus = Bus(URL, middleware=[OpenTelemetry(URL), Prometheus()])
```

Each needs its own optional dependency, installed with ``pip install
'tidings[observability]'``: `Prometheus` needs ``prometheus-client``, `OpenTelemetry` needs
``opentelemetry-api`` (and the application an OpenTelemetry SDK to record the spans).
Importing `tidings`, or this package, imports neither: a name is loaded when it is first
used, so an application using only one of them installs only that one.

``tidings run --metrics-port P`` serves the metrics of every worker process on ``P``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._metrics import METRIC_NAMES
    from ._opentelemetry import OpenTelemetry, messaging_system
    from ._prometheus import Prometheus, saga_completed

__all__ = ["METRIC_NAMES", "OpenTelemetry", "Prometheus", "messaging_system", "saga_completed"]

_WHERE = {
    "METRIC_NAMES": ("._metrics", "prometheus-client"),
    "Prometheus": ("._prometheus", "prometheus-client"),
    "saga_completed": ("._prometheus", "prometheus-client"),
    "OpenTelemetry": ("._opentelemetry", "opentelemetry-api"),
    "messaging_system": ("._opentelemetry", "opentelemetry-api"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, needs = where
    try:
        module = importlib.import_module(module_name, __name__)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("prometheus_client", "opentelemetry"):
            raise
        raise ImportError(
            f"tidings.observability.{name} needs {needs}: pip install 'tidings[observability]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
