"""The OpenAPI document, made to tell the truth about what goes over the wire.

FastAPI generates the document from the route declarations; three things need correcting:

- **amounts are numbers**: pydantic documents a Decimal as "number or string", but the
  service writes amounts as exact JSON numbers (and the spec shows numbers);
- **request bodies**: write routes read their bodies themselves (exact Decimals), so the
  body schemas are added from ``context.documented_bodies``;
- **validation errors are 400** with the ``{"error", "detail"}`` body, not FastAPI's 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from smartspace_budget.models.ids import ID_PATTERN, MAX_ID_LENGTH
from smartspace_budget.server.context import documented_bodies

__all__ = ["install_openapi", "numbers_for_decimals"]

_REF_TEMPLATE = "#/components/schemas/{model}"


def _is_decimal(schema: dict[str, Any]) -> bool:
    """Pydantic's validation schema of a Decimal: ``anyOf: [number, string]``."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return False
    kinds = [o.get("type") for o in options if isinstance(o, dict)]
    return (
        "number" in kinds
        and "string" in kinds
        and all(set(o) <= {"type", "pattern"} for o in options if isinstance(o, dict))
    )


def numbers_for_decimals(node: Any) -> Any:
    """Rewrite every Decimal schema in ``node`` as ``{"type": "number"}`` (null kept)."""
    if isinstance(node, list):
        return [numbers_for_decimals(item) for item in node]
    if not isinstance(node, dict):
        return node
    if _is_decimal(node):
        kinds = {o.get("type") for o in node["anyOf"]}
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if "null" in kinds:
            return {**rest, "anyOf": [{"type": "number"}, {"type": "null"}]}
        return {**rest, "type": "number"}
    return {key: numbers_for_decimals(value) for key, value in node.items()}


def _add_bodies(components: dict[str, Any]) -> None:
    for name, model in documented_bodies.items():
        schema = model.model_json_schema(ref_template=_REF_TEMPLATE, mode="validation")
        for def_name, definition in schema.pop("$defs", {}).items():
            components.setdefault(def_name, definition)
        components[name] = schema


def _drop_422(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            generated = responses.get("422")
            if generated is None or "HTTPValidationError" not in repr(generated):
                continue  # no 422, or our own (InconsistentInputError)
            del responses["422"]
            if "400" not in responses:
                responses["400"] = {
                    "description": "Invalid input",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF_TEMPLATE.format(model="ErrorBody")}
                        }
                    },
                }
    components = document.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)


_PATH_IDS = frozenset({"user_id", "project_id", "provider", "model", "reservation_id", "alert_id"})


def _document_path_ids(document: dict[str, Any]) -> None:
    """Path ids are read by the routes themselves (``path_id``: percent-decoding, ``%2F``),
    so FastAPI knows them only as strings; give them the id grammar's schema."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in _PATH_IDS:
                    parameter["schema"] = {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_ID_LENGTH,
                        "pattern": ID_PATTERN,
                        "title": parameter["schema"].get("title", parameter["name"]),
                    }


_ACCOUNT_WRITES = ("deposit", "record_usage", "refund", "adjust", "reserve", "set_policy")
_ACCOUNT_READS = ("get_balance", "get_budget_status", "get_policy", "get_analytics", "reserve")


def _add_links(document: dict[str, Any]) -> None:
    """OpenAPI links between operations, so a client (or a stateful fuzzer) can follow a
    write to the reads of its account and a hold to its settlement or release."""
    by_name: dict[str, tuple[str, dict[str, Any]]] = {}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation_id = operation.get("operationId", "")
            by_name[operation_id.split("_api_", 1)[0]] = (operation_id, operation)
    account = {
        "user_id": "$request.path.user_id",
        "project_id": "$request.path.project_id",
    }
    for write in _ACCOUNT_WRITES:
        if write not in by_name:
            continue
        answer = by_name[write][1].get("responses", {}).get("200")
        if answer is None:
            continue
        links = answer.setdefault("links", {})
        for read in _ACCOUNT_READS:
            if read in by_name:
                links[read] = {"operationId": by_name[read][0], "parameters": dict(account)}
    held = by_name.get("reserve", (None, {}))[1].get("responses", {}).get("200")
    if held is not None:
        for then in ("settle", "release"):
            if then in by_name:
                held.setdefault("links", {})[then] = {
                    "operationId": by_name[then][0],
                    "parameters": {"reservation_id": "$response.body#/reservation_id"},
                }


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the corrected document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            separate_input_output_schemas=False,
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        _add_bodies(components)
        _drop_422(document)
        _document_path_ids(document)
        _add_links(document)
        app.openapi_schema = numbers_for_decimals(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
