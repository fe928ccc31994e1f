"""The compatibility rules, on a table of changes, checked as properties over random models.

Each row of the table is a change a developer makes to a message model (add a field with
or without a default, remove, rename, change a type, widen or narrow an enum, change a
nested model); hypothesis draws the model it is applied to, and the rules must report
exactly the breaks the row says, at the field changed, whatever the rest of the model."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, create_model

from tidings.schemas import Change, compare_schemas

BACKWARD, FORWARD = "BACKWARD", "FORWARD"
KINDS: dict[str, Any] = {"str": str, "int": int, "bool": bool}
DEFAULTS = {"str": "", "int": 0, "bool": False}


@dataclass(frozen=True)
class Field:
    kind: str  # a key of KINDS; "colour" and "address" for the enum and the nested model
    # that rows change; "shade" and "place" for an enum and a nested model they leave alone
    required: bool


@dataclass(frozen=True)
class Spec:
    """A message model: its fields, the values of its enum, the fields of its nested model."""

    fields: tuple[tuple[str, Field], ...]
    colours: tuple[str, ...] = ("red", "green")
    nested: tuple[tuple[str, Field], ...] = (("street", Field("str", True)),)

    def with_field(self, name: str, field: Field | None) -> Spec:
        rest = tuple((n, f) for n, f in self.fields if n != name)
        return replace(self, fields=rest + (((name, field),) if field else ()))


def model_of(spec: Spec) -> type[BaseModel]:
    colour = enum.Enum("Colour", [(c, c) for c in spec.colours], type=str)  # type: ignore[misc]
    address = create_model(
        "Address",
        **{n: (KINDS[f.kind], ... if f.required else DEFAULTS[f.kind]) for n, f in spec.nested},
    )  # type: ignore[call-overload]
    types: dict[str, Any] = {**KINDS, "colour": colour, "address": address, **UNCHANGED}
    defaults: dict[str, Any] = {**DEFAULTS, "colour": spec.colours[0], "shade": "dark"}
    fields: dict[str, Any] = {}
    for name, field in spec.fields:
        kind = types[field.kind]
        if field.required:
            fields[name] = (kind, ...)
        elif field.kind in ("address", "place"):
            fields[name] = (kind | None, None)
        else:
            fields[name] = (kind, defaults[field.kind])
    return create_model("Message", **fields)  # type: ignore[call-overload,no-any-return]


class Shade(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


class Place(BaseModel):
    city: str
    zip: str = ""


UNCHANGED: dict[str, Any] = {"shade": Shade, "place": Place}


def schema_of(spec: Spec) -> dict[str, Any]:
    return model_of(spec).model_json_schema()


NAMES = [f"f{i}" for i in range(6)]
fields = st.builds(Field, st.sampled_from([*KINDS, *UNCHANGED]), st.booleans())
specs = st.builds(
    Spec,
    st.dictionaries(st.sampled_from(NAMES), fields, min_size=1, max_size=5).map(
        lambda d: tuple(d.items())
    ),
)

Breaks = set[tuple[str, tuple[str, ...]]]


def breaks(changes: list[Change]) -> Breaks:
    return {(c.path, c.breaks) for c in changes}


# A change: (the model before, the model after) from a drawn model, and the breaks expected.
Row = Callable[[Spec], tuple[Spec, Spec, Breaks]]


def add_optional(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    return spec, spec.with_field("added", Field("str", False)), set()


def add_required(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    return spec, spec.with_field("added", Field("int", True)), {("added", (BACKWARD,))}


def remove_required(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("gone", Field("str", True))
    return old, old.with_field("gone", None), {("gone", (FORWARD,))}


def remove_optional(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("gone", Field("str", False))
    return old, old.with_field("gone", None), set()


def rename(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("before", Field("str", True))
    new = old.with_field("before", None).with_field("after", Field("str", True))
    return old, new, {("before", (FORWARD,)), ("after", (BACKWARD,))}


def change_type(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("x", Field("str", True))
    return old, old.with_field("x", Field("int", True)), {("x", (BACKWARD, FORWARD))}


def widen_enum(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("colour", Field("colour", True))
    return old, replace(old, colours=(*old.colours, "blue")), {("colour", (FORWARD,))}


def narrow_enum(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = replace(
        spec.with_field("colour", Field("colour", True)), colours=("red", "green", "blue")
    )
    return old, replace(old, colours=("red", "green")), {("colour", (BACKWARD,))}


def nested_add_required(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("address", Field("address", True))
    new = replace(old, nested=(*old.nested, ("zip", Field("str", True))))
    return old, new, {("address.zip", (BACKWARD,))}


def nested_type_change(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("address", Field("address", False))
    new = replace(old, nested=(("street", Field("int", True)),))
    return old, new, {("address.street", (BACKWARD, FORWARD))}


def nested_add_optional(spec: Spec) -> tuple[Spec, Spec, Breaks]:
    old = spec.with_field("address", Field("address", True))
    new = replace(old, nested=(*old.nested, ("zip", Field("str", False))))
    return old, new, set()


TABLE: list[Row] = [
    add_optional,
    add_required,
    remove_required,
    remove_optional,
    rename,
    change_type,
    widen_enum,
    narrow_enum,
    nested_add_required,
    nested_type_change,
    nested_add_optional,
]


def without(spec: Spec, *names: str) -> Spec:
    for name in names:
        spec = spec.with_field(name, None)
    return spec


@settings(max_examples=150, deadline=None)
@given(specs, st.sampled_from(TABLE))
def test_each_change_breaks_exactly_what_the_table_says(spec: Spec, row: Row) -> None:
    spec = without(spec, "added", "gone", "before", "after", "x", "colour", "address")
    old, new, expected = row(spec)
    assert breaks(compare_schemas(schema_of(old), schema_of(new))) == expected


@settings(max_examples=150, deadline=None)
@given(specs, st.sampled_from(TABLE))
def test_the_reverse_change_breaks_the_other_way(spec: Spec, row: Row) -> None:
    # Reading old data with the new model is reading new data with the old one, reversed.
    spec = without(spec, "added", "gone", "before", "after", "x", "colour", "address")
    old, new, expected = row(spec)
    swap = {BACKWARD: FORWARD, FORWARD: BACKWARD}
    reverse = {(p, tuple(sorted(swap[b] for b in bs))) for p, bs in expected}
    assert breaks(compare_schemas(schema_of(new), schema_of(old))) == reverse


@settings(max_examples=100, deadline=None)
@given(specs)
def test_a_model_is_compatible_with_itself(spec: Spec) -> None:
    assert compare_schemas(schema_of(spec), schema_of(spec)) == []


def test_widening_to_optional_and_int_to_float_break_forward_only() -> None:
    class Old(BaseModel):
        count: int
        name: str

    class New(BaseModel):
        count: float
        name: str | None

    assert breaks(compare_schemas(Old.model_json_schema(), New.model_json_schema())) == {
        ("count", (FORWARD,)),
        ("name", (FORWARD,)),
    }


def test_changes_read_as_a_field_and_a_rule() -> None:
    [change] = compare_schemas(schema_of(Spec(())), schema_of(Spec((("qty", Field("int", True)),))))
    assert str(change) == "field 'qty': added a required field (no default) breaks BACKWARD"


def test_recursive_models_are_compared_without_end() -> None:
    class Node(BaseModel):
        value: int
        children: list[Node] = []

    class Node2(BaseModel):
        value: str
        children: list[Node2] = []

    found = breaks(compare_schemas(Node.model_json_schema(), Node2.model_json_schema()))
    assert found == {("value", (BACKWARD, FORWARD))}
