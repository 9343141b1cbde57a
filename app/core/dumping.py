"""``Schema.dump`` without marshmallow's per-field machinery, for the schemas responses use.

A page of 20 tasks is 260 field values. marshmallow spends most of its time around each value
(``Field.serialize``, the accessor, the missing-value checks), not converting it: a quarter of a
list request's CPU in the profile (docs/performance.md). ``compile_dump`` reads a schema once and
returns a function that does the same conversions straight: the same keys, the same values, the
same omissions, for every field kind the API's response schemas use. What it does not reproduce
(dump hooks, a schema's own accessor, dotted attributes, dump defaults) keeps marshmallow's own
path, for that field or for the whole schema, so the result never differs; the tests compare the
two on every response schema the API declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma
from marshmallow import fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP

Dump = Callable[[Any], Any]
Convert = Callable[[Any], Any]
# (output key, attribute, converter of a present value, field.serialize for the slow path)
FieldPlan = tuple[str, str, Convert | None, Callable[..., Any] | None]

_DATETIME_KINDS = (fields.DateTime, fields.AwareDateTime, fields.NaiveDateTime, fields.Date)


def compile_dump(schema: ma.Schema) -> Dump | None:
    """A function equal to ``schema.dump`` (honouring ``schema.many``), or None when the schema
    uses what this module does not reproduce (then call ``schema.dump``)."""
    plans = _plan(schema)
    if plans is None:
        return None
    dump_one = _dump_one(plans, schema)
    if schema.many:
        return lambda objects: [dump_one(obj) for obj in objects]
    return dump_one


def fast_dump(schema: ma.Schema) -> ma.Schema:
    """``schema`` with ``dump`` replaced by its compiled form where it compiles (same instance)."""
    compiled = compile_dump(schema)
    if compiled is not None:
        original = schema.dump

        def dump(obj: Any, *, many: bool | None = None) -> Any:
            if many is None or bool(many) == schema.many:
                return compiled(obj)
            return original(obj, many=many)

        schema.dump = dump  # type: ignore[method-assign]
    return schema


def _plan(schema: ma.Schema) -> list[FieldPlan] | None:
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        return None
    if type(schema).get_attribute is not ma.Schema.get_attribute:
        return None
    plans: list[FieldPlan] = []
    for name, field in schema.dump_fields.items():
        key = field.data_key if field.data_key is not None else name
        attribute = field.attribute if field.attribute is not None else name
        convert = _converter(field) if _plain_access(field, attribute) else None
        slow = None
        if convert is None:
            slow = _slow_path(field, name, schema)
        plans.append((key, attribute, convert, slow))
    return plans


def _plain_access(field: fields.Field[Any], attribute: str) -> bool:
    """True when the value is the attribute or key ``attribute`` of the object, as is."""
    return (
        field._CHECK_ATTRIBUTE
        and "." not in attribute
        and type(field).get_value is fields.Field.get_value
        and field.dump_default is missing
    )


def _slow_path(field: fields.Field[Any], name: str, schema: ma.Schema) -> Callable[..., Any]:
    def serialize(obj: Any) -> Any:
        return field.serialize(name, obj, accessor=schema.get_attribute)

    return serialize


def _converter(field: fields.Field[Any]) -> Convert | None:
    """The conversion ``field._serialize`` applies to a present value, as a plain function."""
    kind = type(field)
    if kind is fields.String:
        return _text
    if kind is fields.Integer and not field.as_string:  # type: ignore[attr-defined]
        return _integer
    if kind is fields.Boolean:
        return _none_or(lambda value: field._serialize(value, None, None))
    if kind in _DATETIME_KINDS:
        data_format = field.format or field.DEFAULT_FORMAT  # type: ignore[attr-defined]
        format_func = field.SERIALIZATION_FUNCS.get(data_format)  # type: ignore[attr-defined]
        return _none_or(format_func) if format_func is not None else None
    if kind is fields.List:
        inner = _converter(field.inner)  # type: ignore[attr-defined]
        if inner is None:
            return None
        return _none_or(lambda values: [inner(value) for value in values])
    if kind is fields.Nested:
        nested = field.schema  # type: ignore[attr-defined]
        many = nested.many or field.many  # type: ignore[attr-defined]
        plans = _plan(nested)
        if plans is None:
            return _none_or(lambda value: nested.dump(value, many=many))
        dump_one = _dump_one(plans, nested)
        if many:
            return _none_or(lambda values: [dump_one(value) for value in values])
        return _none_or(dump_one)
    return None


def _dump_one(plans: list[FieldPlan], schema: ma.Schema) -> Dump:
    dict_class = schema.dict_class

    def dump_one(obj: Any) -> dict[str, Any]:
        result = dict_class()
        mapping = hasattr(obj, "__getitem__")
        for key, attribute, convert, slow in plans:
            if convert is None:
                value = slow(obj)  # type: ignore[misc]
            else:
                value = _item(obj, attribute) if mapping else getattr(obj, attribute, missing)
                if value is not missing:
                    value = convert(value)
            if value is not missing:
                result[key] = value
        return result

    return dump_one


def _item(obj: Any, key: str) -> Any:
    """marshmallow's accessor for an object with ``__getitem__``: the item, else the attribute."""
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError, AttributeError):
        return getattr(obj, key, missing)


def _none_or(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _integer(value: Any) -> Any:
    return None if value is None else int(value)
