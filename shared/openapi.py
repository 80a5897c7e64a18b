"""OpenAPI 3 document built from the routes' marshmallow schemas.

Every `@api` route registers here when its service module is imported, so a
process serves the document of exactly the services it runs.
"""
import re
from dataclasses import dataclass, field

from marshmallow import fields as mf
from marshmallow import validate as mv

from shared.errors import STATUS


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str = ""
    auth: str = None          # None, "tourist", "device", "admin"
    body: type = None         # marshmallow Schema class
    query: type = None
    responses: dict = field(default_factory=dict)   # status -> Schema class or None
    errors: tuple = ()
    tag: str = None


ROUTES = []


def register(route):
    if not any(r.method == route.method and r.path == route.path for r in ROUTES):
        ROUTES.append(route)


def _field_schema(fld, components):
    if isinstance(fld, mf.Nested):
        nested = fld.nested if isinstance(fld.nested, type) else type(fld.nested)
        ref = {"$ref": "#/components/schemas/%s" % _component(nested, components)}
        return {"type": "array", "items": ref} if fld.many else ref
    if isinstance(fld, mf.List):
        out = {"type": "array", "items": _field_schema(fld.inner, components)}
    elif isinstance(fld, mf.Dict):
        out = {"type": "object"}
    elif isinstance(fld, mf.Boolean):
        out = {"type": "boolean"}
    elif isinstance(fld, mf.Integer):
        out = {"type": "integer"}
    elif isinstance(fld, (mf.Float, mf.Decimal, mf.Number)):
        out = {"type": "number"}
    elif isinstance(fld, mf.DateTime):
        out = {"type": "string", "format": "date-time"}
    elif isinstance(fld, mf.Date):
        out = {"type": "string", "format": "date"}
    elif isinstance(fld, mf.Time):
        out = {"type": "string", "format": "time"}
    elif isinstance(fld, mf.UUID):
        out = {"type": "string", "format": "uuid"}
    else:
        out = {"type": "string"}
    for v in fld.validators:
        if isinstance(v, mv.OneOf):
            out["enum"] = list(v.choices)
        elif isinstance(v, mv.Length):
            key = "Items" if out.get("type") == "array" else "Length"
            if v.min is not None:
                out["min" + key] = v.min
            if v.max is not None:
                out["max" + key] = v.max
        elif isinstance(v, mv.Range):
            if v.min is not None:
                out["minimum"] = v.min
            if v.max is not None:
                out["maximum"] = v.max
        elif isinstance(v, mv.Regexp):
            out["pattern"] = v.regex.pattern
    if fld.metadata.get("description"):
        out["description"] = fld.metadata["description"]
    if fld.allow_none:
        out["nullable"] = True
    return out


def _component(schema_cls, components):
    name = schema_cls.__name__
    if name.endswith("Schema"):
        name = name[: -len("Schema")]
    if name in components:
        return name
    components[name] = {}  # placeholder against recursion
    schema = schema_cls()
    props, required = {}, []
    for fname, fld in schema.fields.items():
        key = fld.data_key or fname
        if fld.load_only and fld.dump_only:
            continue
        props[key] = _field_schema(fld, components)
        if fld.required:
            required.append(key)
    body = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        body["required"] = required
    components[name] = body
    return name


def _parameters(route, components):
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in re.findall(r"<(?:\w+:)?(\w+)>", route.path)]
    if route.query:
        for fname, fld in route.query().fields.items():
            params.append({"name": fld.data_key or fname, "in": "query",
                           "required": bool(fld.required),
                           "schema": _field_schema(fld, components)})
    return params


def openapi_path(path):
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)


SECURITY = {
    "tourist": {"type": "http", "scheme": "bearer", "description": "tourist token from POST /v1/tourists"},
    "admin": {"type": "http", "scheme": "bearer", "description": "operator token from configuration"},
    "device": {"type": "apiKey", "in": "header", "name": "Authorization",
               "description": "`Device <key>` for a gate, desk, kiosk or lock"},
}


def document(title="Duoyou API", version="1.0.0"):
    components, paths = {}, {}
    error_ref = {"$ref": "#/components/schemas/Error"}
    for route in sorted(ROUTES, key=lambda r: (r.path, r.method)):
        op = {"summary": route.summary or route.path, "operationId": _operation_id(route),
              "responses": {}}
        if route.tag:
            op["tags"] = [route.tag]
        params = _parameters(route, components)
        if params:
            op["parameters"] = params
        if route.auth:
            op["security"] = [{route.auth: []}]
        if route.body:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/%s" % _component(route.body, components)}}}}
        for status, schema in (route.responses or {200: None}).items():
            content = {}
            if schema is not None:
                content = {"content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/%s" % _component(schema, components)}}}}
            op["responses"][str(status)] = {"description": "success", **content}
        codes = set(route.errors)
        if route.body or route.query:
            codes |= {"validation_error"} | ({"bad_json", "too_large"} if route.body else set())
        if route.auth:
            codes |= {"unauthenticated"}
        for status in sorted({STATUS[c] for c in codes}):
            names = sorted(c for c in codes if STATUS[c] == status)
            op["responses"][str(status)] = {
                "description": "error: " + ", ".join(names),
                "content": {"application/json": {"schema": error_ref}}}
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = op
    components["Error"] = {
        "type": "object", "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "enum": sorted(STATUS)},
            "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {
                "type": "array", "items": {"type": "string"}}}}}
    return {"openapi": "3.0.3", "info": {"title": title, "version": version},
            "paths": paths,
            "components": {"schemas": components, "securitySchemes": SECURITY}}


def _operation_id(route):
    words = re.sub(r"[^a-zA-Z0-9]+", "_", route.path.replace("<", "").replace(">", "")).strip("_")
    return "%s_%s" % (route.method.lower(), words)
