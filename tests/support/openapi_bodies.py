"""Request bodies read from the OpenAPI document: a valid body for an operation is its request
schema's required properties (and, for a patch, its first properties up to ``minProperties``),
each the example the document gives it. Tests that need a valid body take it from here, so an
operation is covered the day it is documented, and the examples Swagger UI offers are kept valid
requests (tests/security/test_resource_consumption.py sends every one)."""

from __future__ import annotations

import copy
from typing import Any

JSON = "application/json"


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$ref`` (``#/components/schemas/Name``) followed."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def request_schema(document: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON request body schema of the operation ``spec``, resolved; None without one."""
    content = spec.get("requestBody", {}).get("content", {})
    if JSON not in content:
        return None
    return resolve(document, content[JSON]["schema"])


def body_properties(document: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The names of the properties of the operation's JSON body, in the document's order."""
    schema = request_schema(document, spec)
    return list(schema.get("properties", {})) if schema else []


def valid_body(document: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A valid JSON body for the operation ``spec``, made of the document's examples."""
    schema = request_schema(document, spec)
    if schema is None:
        raise LookupError(f"{spec['operationId']} takes no JSON body")
    return copy.deepcopy(valid_object(document, schema, spec["operationId"]))


def valid_object(
    document: dict[str, Any],
    schema: dict[str, Any],
    where: str,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The required properties of the object ``schema`` (``properties``: the enclosing schema's,
    for an alternative that only names requirements), then enough of the rest for
    ``minProperties``, then the first alternative of a ``oneOf`` or ``anyOf``."""
    properties = {**(properties or {}), **schema.get("properties", {})}
    names = list(schema.get("required", []))
    for name in properties:
        if len(names) >= schema.get("minProperties", 0):
            break
        if name not in names:
            names.append(name)
    body = {name: example(document, properties[name], f"{where}.{name}") for name in names}
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            first = resolve(document, schema[keyword][0])
            body.update(valid_object(document, first, where, properties))
    return body


def example(document: dict[str, Any], schema: dict[str, Any], where: str) -> Any:
    """The property's example, else its referenced schema's (an object built from its own)."""
    if "example" in schema:
        return schema["example"]
    referenced = schema.get("allOf", [schema])
    if len(referenced) == 1 and "$ref" in referenced[0]:
        target = resolve(document, referenced[0])
        if "example" in target:
            return target["example"]
        if target.get("type") == "object":
            return valid_object(document, target, where)
    raise LookupError(f"{where} has no example: give the field metadata={{'example': ...}}")
