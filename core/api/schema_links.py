"""OpenAPI links between operations (a drf-spectacular postprocessing hook, SPECTACULAR_SETTINGS).

A client - or a stateful test - learns from the schema where an object's id leads: the id in the
answer of an operation on a collection `/x` fills the one path parameter of the operations on
`/x/{param}` and below. The creation (201) links from the created object's `id`, a listing
(200) from its first item's (`results/0/id` for a page, `0/id` for an array). So `POST
guest-passes` links to `GET guest-passes/{pass_id}` and `POST guest-passes/{pass_id}/revoke`, and
`GET devices` to `POST devices/{device_id}/open`.
"""

import re

_PARAMETER_SEGMENT = re.compile(r"^/\{(\w+)\}(/.*)?$")


def _component(result: dict, schema: dict) -> dict:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return result["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})
    return schema


def _id_pointer(result: dict, status: str, response: dict) -> str | None:
    """Where the id of the (first) object sits in this response, as a JSON pointer; None if nowhere."""
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    schema = _component(result, schema)
    if status == "201":
        return "/id" if "id" in schema.get("properties", {}) else None
    if schema.get("type") == "array":
        items = _component(result, schema.get("items", {}))
        return "/0/id" if "id" in items.get("properties", {}) else None
    results = schema.get("properties", {}).get("results", {})
    if results.get("type") == "array" and "id" in _component(result, results.get("items", {})).get("properties", {}):
        return "/results/0/id"
    return None


def link_operations(result, generator, request, public):
    paths = result["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            status = {"post": "201", "get": "200"}.get(method)
            response = operation.get("responses", {}).get(status)
            pointer = _id_pointer(result, status, response) if response else None
            if pointer is None:
                continue
            links = {}
            for target_path, target_item in paths.items():
                match = _PARAMETER_SEGMENT.match(target_path[len(path):]) if target_path.startswith(path) else None
                if match is None:
                    continue
                for target in target_item.values():
                    links[target["operationId"]] = {
                        "operationId": target["operationId"],
                        "parameters": {match[1]: f"$response.body#{pointer}"},
                    }
            if links:
                response["links"] = dict(sorted(links.items()))
    return result
