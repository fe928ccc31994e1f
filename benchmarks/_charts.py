"""PNG charts with matplotlib's non-interactive Agg backend: grouped bars of medians with
the min-max spread of the rounds as error bars, and an optional target line."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ._measure import Spread  # noqa: E402

COLOURS = ("#3b6ea8", "#e08a2c", "#5a9e4b", "#b8474a", "#7d5ba6", "#8c8c8c")
LINE_STYLES = ("--", ":", "-.")


@dataclass(frozen=True)
class Line:
    """A horizontal reference line (a target)."""

    value: float
    label: str


def bars(
    path: Path,
    *,
    title: str,
    ylabel: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[Spread]],
    log: bool = False,
    line: Line | None = None,
    lines: Sequence[Line] = (),
) -> None:
    """One group of bars per entry of `groups`, one bar per series in each group, and a
    dashed horizontal line per target (`line`, `lines`)."""
    targets = [*([line] if line is not None else []), *lines]
    fig, ax = plt.subplots(figsize=(max(7.5, 1.6 * len(groups) + 4.5), 4.2), dpi=110)
    width = 0.8 / max(1, len(series))
    for i, (name, spreads) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        medians = [0.0 if math.isnan(s.median) else s.median for s in spreads]
        below = [0.0 if math.isnan(s.low) else s.median - s.low for s in spreads]
        above = [0.0 if math.isnan(s.high) else s.high - s.median for s in spreads]
        ax.bar(
            xs,
            medians,
            width,
            label=name,
            color=COLOURS[i % len(COLOURS)],
            yerr=[below, above],
            capsize=3,
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
        )
        tops = [m + a for m, a in zip(medians, above, strict=True)]
        for x, value, top in zip(xs, medians, tops, strict=True):
            if value > 0:
                ax.annotate(
                    _short(value),
                    (x, top),
                    textcoords="offset points",
                    xytext=(0, 3),
                    ha="center",
                    fontsize=7,
                )
    for i, target in enumerate(targets):
        style = LINE_STYLES[i % len(LINE_STYLES)]
        ax.axhline(target.value, color="#b8474a", linestyle=style, linewidth=1, label=target.label)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(_tick))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if len(series) > 1 or targets:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _tick(value: float, _: object) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:g}"


def ratio(numerator: Sequence[float], denominator: Sequence[float]) -> Spread:
    """The ratio of two contenders' medians as a bar (no spread: rounds are paired only
    by order, so a per-round ratio would be no better a range)."""
    top, bottom = Spread.of(numerator), Spread.of(denominator)
    value = top.median / bottom.median if bottom.median else float("nan")
    return Spread(value, value, value, 1)


def _short(value: float) -> str:
    if value >= 100_000:
        return f"{value / 1000:,.0f}k"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.2g}"
