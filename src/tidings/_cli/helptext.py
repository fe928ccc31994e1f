"""How ``--help`` shows a command's options: a flag shows no value placeholder.

typer shows the type of every option after its name (``--url <str>``), flags included
(``--json <bool>``), though a flag takes no value. The command classes here give each flag
an empty metavar, so ``--json`` is shown alone; every command and group of ``tidings`` is
made with them (`TidingsCommand`, `TidingsGroup`).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup, TyperOption

__all__ = ["TidingsCommand", "TidingsGroup"]


def _bare_flags(params: list[Any]) -> list[Any]:
    """`params`, each flag (an option taking no value, ``--help`` too) without a metavar."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_bool_flag and param.metavar is None:
            param.metavar = ""
    return params


class TidingsCommand(TyperCommand):
    """A ``tidings`` command: flags shown without a ``<bool>`` placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))


class TidingsGroup(TyperGroup):
    """A ``tidings`` command group: flags shown without a ``<bool>`` placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))
