"""The compiled dump gives exactly what marshmallow's ``Schema.dump`` gives."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import uuid
from types import SimpleNamespace
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask

from app.core.dumping import compile_dump, fast_dump

WHEN = dt.datetime(2030, 1, 2, 9, 30, tzinfo=dt.UTC)


class Colour(enum.Enum):
    RED = "red"


class Label(enum.StrEnum):
    HIGH = "high"


class Child(ma.Schema):
    name = ma.fields.String()
    size = ma.fields.Integer(allow_none=True)


class Everything(ma.Schema):
    text = ma.fields.String()
    number = ma.fields.Integer()
    number_text = ma.fields.Integer(as_string=True)
    flag = ma.fields.Boolean()
    when = ma.fields.AwareDateTime()
    when_rfc = ma.fields.DateTime(format="rfc")
    when_custom = ma.fields.DateTime(format="%Y/%m/%d")
    day = ma.fields.Date()
    tags = ma.fields.List(ma.fields.String())
    stamps = ma.fields.List(ma.fields.DateTime())
    colours = ma.fields.List(ma.fields.Enum(Colour))
    child = ma.fields.Nested(Child)
    children = ma.fields.Nested(Child, many=True)
    child_list = ma.fields.List(ma.fields.Nested(Child))
    renamed = ma.fields.String(data_key="renamedKey")
    sourced = ma.fields.String(attribute="source_name")
    dotted = ma.fields.String(attribute="child.name")
    colour = ma.fields.Enum(Colour)
    label = ma.fields.String()  # a str enum, as the task priority is
    identifier = ma.fields.UUID()
    defaulted = ma.fields.String(dump_default="fallback")
    computed = ma.fields.Method("compute")
    constant = ma.fields.Constant(3)
    anything = ma.fields.Raw()
    mapping = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())

    def compute(self, obj: Any) -> str:
        return f"computed-{ma.utils.get_value(obj, 'number')}"


FULL = {
    "text": "hello",
    "number": 7,
    "number_text": 8,
    "flag": 1,
    "when": WHEN,
    "when_rfc": WHEN,
    "when_custom": WHEN,
    "day": WHEN.date(),
    "tags": ["a", b"b"],
    "stamps": [WHEN, None],
    "colours": [Colour.RED],
    "child": {"name": "c", "size": None},
    "children": [{"name": "d", "size": 1}, {"name": "e"}],
    "child_list": [{"name": "f", "size": 2}],
    "renamed": "r",
    "source_name": "s",
    "colour": Colour.RED,
    "label": Label.HIGH,
    "identifier": uuid.UUID(int=5),
    "defaulted": "given",
    "anything": {"x": [1]},
    "mapping": {"k": 1},
}


NESTED = {"child", "children", "child_list"}


def _namespace(values: dict[str, Any], nested: set[str] = NESTED) -> Any:
    """``values`` as an object with attributes (as ORM rows are), nested objects too."""

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return SimpleNamespace(**value)
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return SimpleNamespace(
        **{key: convert(value) if key in nested else value for key, value in values.items()}
    )


def _variants() -> list[Any]:
    nones = dict.fromkeys(FULL)
    sparse = {key: value for index, (key, value) in enumerate(FULL.items()) if index % 2}
    return [
        FULL,
        nones,
        sparse,
        {},
        _namespace(FULL),
        _namespace(nones),
        _namespace(sparse),
        SimpleNamespace(),
        # A mapping without the key falls back to the attribute, as marshmallow's accessor does.
        {"text": "only"},
    ]


@pytest.mark.parametrize("obj", _variants(), ids=lambda obj: type(obj).__name__)
def test_every_field_kind_dumps_as_marshmallow_does(obj: Any) -> None:
    schema = Everything()
    compiled = compile_dump(schema)
    assert compiled is not None
    assert compiled(obj) == schema.dump(obj)


def test_key_order_is_the_schemas() -> None:
    schema = Everything()
    compiled = compile_dump(schema)
    assert compiled is not None
    assert list(compiled(FULL)) == list(schema.dump(FULL))


def test_many_schemas_dump_lists() -> None:
    schema = Child(many=True)
    compiled = compile_dump(schema)
    assert compiled is not None
    objects = [{"name": "a", "size": 1}, SimpleNamespace(name="b", size=None)]
    assert (
        compiled(objects)
        == schema.dump(objects)
        == [
            {"name": "a", "size": 1},
            {"name": "b", "size": None},
        ]
    )


def test_fast_dump_keeps_an_explicit_many_working() -> None:
    schema = fast_dump(Child())
    objects = [{"name": "a", "size": 1}]
    assert schema.dump(objects, many=True) == [{"name": "a", "size": 1}]
    assert schema.dump(objects[0]) == {"name": "a", "size": 1}


class WithHook(ma.Schema):
    name = ma.fields.String()

    @ma.post_dump
    def shout(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["name"] = data["name"].upper()
        return data


class OwnAccessor(Child):
    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        return "accessed"


def test_schemas_with_dump_hooks_or_their_own_accessor_keep_marshmallows_dump() -> None:
    assert compile_dump(WithHook()) is None
    assert compile_dump(OwnAccessor()) is None
    schema = fast_dump(WithHook())
    assert schema.dump({"name": "x"}) == {"name": "X"}


class HookedChild(ma.Schema):
    name = ma.fields.String()

    @ma.pre_dump
    def rename(self, data: Any, **_kwargs: Any) -> Any:
        return {"name": f"pre-{data['name']}"}


class Parent(ma.Schema):
    child = ma.fields.Nested(HookedChild)
    children = ma.fields.Nested(HookedChild, many=True)


def test_nested_schemas_with_hooks_dump_through_marshmallow() -> None:
    schema = Parent()
    compiled = compile_dump(schema)
    assert compiled is not None
    obj = {"child": {"name": "a"}, "children": [{"name": "b"}]}
    assert (
        compiled(obj)
        == schema.dump(obj)
        == {
            "child": {"name": "pre-a"},
            "children": [{"name": "pre-b"}],
        }
    )


# --- every response schema the API declares --------------------------------------------------


def _response_schemas(app: Flask) -> dict[str, ma.Schema]:
    found: dict[str, ma.Schema] = {}
    for endpoint, view in app.view_functions.items():
        view_class = getattr(view, "view_class", None)
        methods = (
            [getattr(view_class, name.lower()) for name in view_class.methods]
            if view_class is not None
            else [view]
        )
        for method in methods:
            responses = getattr(method, "_apidoc", {}).get("response", {}).get("responses", {})
            for status, docs in responses.items():
                for doc in docs:
                    schema = doc.get("schema")
                    if isinstance(schema, ma.Schema):
                        found[f"{endpoint} {method.__name__} {status}"] = schema
    return found


def _sample(schema: ma.Schema, *, depth: int = 0) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in schema.dump_fields.items():
        attribute = field.attribute or name
        values[attribute] = _sample_value(field, depth)
    return values


def _sample_value(field: ma.fields.Field, depth: int) -> Any:
    if isinstance(field, ma.fields.Nested):
        nested = field.schema
        item = _sample(nested, depth=depth + 1) if depth < 3 else None
        return [item, item] if (field.many or nested.many) else item
    if isinstance(field, ma.fields.List):
        return [_sample_value(field.inner, depth), _sample_value(field.inner, depth)]
    if isinstance(field, ma.fields.Enum):
        return next(iter(field.enum))
    if isinstance(field, (ma.fields.DateTime, ma.fields.Date)):
        return WHEN if not isinstance(field, ma.fields.Date) else WHEN.date()
    if isinstance(field, ma.fields.Boolean):
        return True
    if isinstance(field, ma.fields.Integer):
        return 42
    if isinstance(field, ma.fields.Float | ma.fields.Decimal):
        return 1.5
    if isinstance(field, ma.fields.UUID):
        return uuid.UUID(int=7)
    if isinstance(field, ma.fields.Dict):
        return {"key": "value"}
    return "text"


def test_every_success_response_of_the_api_takes_the_compiled_path(app: Flask) -> None:
    schemas = _response_schemas(app)
    successes = {
        name: schema for name, schema in schemas.items() if name.endswith((" 200", " 201", " 202"))
    }
    assert "tasks.Tasks get 200" in successes
    slow = [name for name, schema in successes.items() if compile_dump(schema) is None]
    assert slow == []


def test_every_response_schema_of_the_api_dumps_as_marshmallow_does(app: Flask) -> None:
    schemas = _response_schemas(app)
    assert len(schemas) > 20
    for name, schema in schemas.items():
        full = _sample(schema)
        sparse = {key: value for index, (key, value) in enumerate(full.items()) if index % 2}
        nested = {
            field.attribute or name
            for name, field in schema.dump_fields.items()
            if isinstance(field, ma.fields.Nested)
            or isinstance(getattr(field, "inner", None), ma.fields.Nested)
        }
        for obj in (full, sparse, dict.fromkeys(full), _namespace(full, nested)):
            objects = [obj, obj] if schema.many else obj
            # ma.Schema.dump on the instance is marshmallow's own, whatever fast_dump replaced
            original = functools.partial(ma.Schema.dump, schema)
            assert _outcome(schema.dump, objects) == _outcome(original, objects), name


def _outcome(dump: Any, obj: Any) -> tuple[str, Any]:
    """The result, or the kind of error (a mapping without "items" hands marshmallow the
    dict's ``items`` method, which neither path can dump)."""
    try:
        return "dumped", dump(obj)
    except Exception as error:
        return "raised", type(error)
