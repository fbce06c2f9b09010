"""The served OpenAPI document: what FastAPI generates from the routes, completed with what
it cannot see because bodies are read raw (api/bodies.py) and guards are dependencies: request
bodies hoisted into components (no `#/$defs/...` left unresolvable), the bearer scheme with the
roles each operation admits, the idempotency and precondition headers, the headers answers
carry, and the problem+json answers each operation can give. operationIds are stable:
`createLease`, `getFirmPosture`, `recordLeaseAmendments`, ..."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from infra.keys import GRANTS, Permission, Role

JSON = "application/json"
NDJSON = "application/x-ndjson"
PROBLEM_MEDIA = "application/problem+json"
# Request bodies of the routes that read theirs raw, by model name (their $defs beside them).
SCHEMAS: dict[str, dict[str, Any]] = {}
# Bodies declared here rather than on the route: route name -> (media type, schema).
BODIES: dict[str, tuple[str, dict[str, Any]]] = {}
# Routes whose handler answers 201 itself (a JSONResponse the route's status cannot see).
CREATED = {"append_batch", "create_webhook_endpoint"}

PROBLEM = {
    "type": "object", "title": "Problem", "required": ["type", "title", "status"],
    "description": "RFC 9457 problem details; `errors` names each bad field.",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
            "msg": {"type": "string"}, "type": {"type": "string"}}}},
    },
    "example": {"type": "https://chipledger.dev/problems/validation", "title": "Invalid request",
                "status": 422, "detail": "1 field is invalid",
                "errors": [{"loc": ["body", "chip_count"], "msg": "must be positive",
                            "type": "greater_than"}]},
}
_TITLES = {401: "No or unknown API key", 403: "The key's role may not do this",
           404: "No such record", 409: "The id exists with other content",
           412: "The record moved on (If-Match)", 413: "Body over the size limit",
           415: "Not the declared media type", 422: "A bad field, named in `errors`",
           503: "Database unavailable or projections behind; retry after Retry-After"}
_HEADER = {"schema": {"type": "string"}}
HEADERS = {
    "ETag": {"description": "The record's version, quoted: `\"3\"`", **_HEADER},
    "Location": {"description": "Where the new record is read", **_HEADER},
    "Idempotent-Replayed": {"description": "`true` when this is the first answer again",
                            **_HEADER},
    "Retry-After": {"description": "Seconds to wait before retrying", **_HEADER},
}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "Makes a retried append return the first answer and append "
                                  "nothing new; 422 if it comes again with another body.",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": "The record version the append expects (`3` or `\"3\"`): "
                           "412 if the record moved on.",
            "schema": {"type": "string"}}


def batch_line(types: list[str]) -> dict[str, Any]:
    """The schema of one line of an `events:batch` body (and of `chipledger import`)."""
    return {"type": "object", "required": ["type", "body"], "additionalProperties": False,
            "description": "One append a line; `body` is what the append's path takes.",
            "properties": {"type": {"type": "string", "enum": types},
                           "id": {"type": "string", "description": "for a later append"},
                           "body": {"type": "object"}},
            "example": {"type": "leases", "body": {
                "id": "lease-zhiyuan-1", "firm_id": "zhiyuan-compute",
                "data_centre_id": "dc-johor-1", "chip_model": "h100", "chip_count": 512,
                "starts_on": "2024-03-01", "purposes": ["training"]}}}


def request_body(model: type[BaseModel], media: str = JSON) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body raw: the model as a component."""
    return {"requestBody": {"required": True, "content": {media: {"schema": component(model)}}}}


def component(model: type[BaseModel]) -> dict[str, str]:
    """A $ref to `model`'s schema, which (with its $defs) goes into components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    SCHEMAS.update(schema.pop("$defs", {}))
    SCHEMAS[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def operation_id(name: str) -> str:
    """`read_firm_posture` -> `getFirmPosture`; `lease_amendments` -> `recordLeaseAmendments`."""
    verb, _, rest = name.partition("_")
    verb = {"read": "get"}.get(verb, verb)
    words = [verb, *rest.split("_")] if rest else [verb]
    return words[0] + "".join(w.capitalize() for w in words[1:] if w)


def roles_for(route: APIRoute) -> list[str] | None:
    """The roles a route admits, or None when it needs no key."""
    permissions = [getattr(d.call, "required_permission", None)
                   for d in route.dependant.dependencies]
    needed = next((p for p in permissions if isinstance(p, Permission)), None)
    if needed is None:
        return None
    return [role.value for role in Role if needed in GRANTS[role]]


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, summary=app.summary,
                      routes=app.routes, description=app.description)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(SCHEMAS)
    schemas["Problem"] = PROBLEM
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`. Roles: reader (GET), "
                       "writer (+ appends), auditor (reader + replays, verification, exports), "
                       "admin (everything)."}}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            path = context.path_format or route.path_format
            for method in route.methods or ():
                complete(doc["paths"][path][method.lower()], route, path, method)
    return doc


def complete(operation: dict[str, Any], route: APIRoute, path: str, method: str) -> None:
    operation["operationId"] = operation_id(route.name)
    roles = roles_for(route)
    operation["security"] = [{"bearer": roles}] if roles else []
    if roles:
        operation["description"] = (operation.get("description", "") +
                                    f"\n\nRoles: {', '.join(roles)}.").strip()
    if route.name in BODIES:
        media, schema = BODIES[route.name]
        operation["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    responses = operation.setdefault("responses", {})
    success = "201" if route.name in CREATED or route.status_code == 201 else "200"
    if success == "201" and "200" in responses:
        responses["201"] = responses.pop("200")
    _headers(operation, responses.get(success, {}), path, method, success)
    for status in _problems(operation, roles, path, method):
        responses[str(status)] = _problem_response(status)


def _headers(operation: dict[str, Any], answer: dict[str, Any], path: str, method: str,
             success: str) -> None:
    if method != "POST" or not operation.get("requestBody"):
        if method == "GET" and path.endswith("{record_id}"):
            answer.setdefault("headers", {})["ETag"] = HEADERS["ETag"]
        return
    parameters = operation.setdefault("parameters", [])
    parameters.append(IDEMPOTENCY_KEY)
    headers = answer.setdefault("headers", {})
    headers["Idempotent-Replayed"] = HEADERS["Idempotent-Replayed"]
    if "{record_id}" in path:
        parameters.append(IF_MATCH)
        headers["ETag"] = HEADERS["ETag"]
    if success == "201":
        headers["Location"] = HEADERS["Location"]


def _problems(operation: dict[str, Any], roles: list[str] | None, path: str,
              method: str) -> list[int]:
    statuses = [503]
    if roles:
        statuses += [401, 403]
    if "{" in path:
        statuses.append(404)
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.append(422)
    if method == "POST" and operation.get("requestBody"):
        statuses += [413, 415]
        if "Idempotency-Key" in {p["name"] for p in operation.get("parameters", [])}:
            statuses.append(409)
        if "{record_id}" in path:
            statuses.append(412)
    return sorted(statuses)


def _problem_response(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": _TITLES[status], "content": {
        PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if status == 503:
        answer["headers"] = {"Retry-After": HEADERS["Retry-After"]}
    return answer
