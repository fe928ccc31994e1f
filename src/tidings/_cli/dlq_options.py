"""The arguments and options the ``tidings dlq`` commands share (``--app``, ``--url``,
``--name`` and ``--management-url`` are every inspecting command's: `tidings._cli.options`)."""

from __future__ import annotations

from typing import Annotated

import typer

from .entry_ids import MIN_PREFIX

__all__ = ["AllOption", "GroupArgument", "IdsOption", "JsonOption"]

GroupArgument = Annotated[
    str, typer.Argument(metavar="GROUP", help="The group whose dead letters to use.")
]
IdsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--id",
        metavar="ID",
        help=f"Entry id, or a unique prefix of at least {MIN_PREFIX} characters "
        "(repeatable); see `tidings dlq list`.",
        show_default=False,
    ),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every entry of the group.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
