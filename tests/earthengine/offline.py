"""Earth Engine without a server: views of serialised expressions (what the server would evaluate,
as values and function calls) and a fake export endpoint. Build ee objects under the ``ee_api``
fixture (``ee.apitestcase``)."""

from __future__ import annotations

import json

import ee

#: A small AOI polygon in EPSG:4326 (about 10 x 11 km near Berlin).
AOI = {"type": "Polygon", "coordinates": [[[12.60, 52.50], [12.75, 52.50], [12.75, 52.60], [12.60, 52.60],
                                           [12.60, 52.50]]]}


class Expr:
    """A serialised Cloud API expression: ``values`` (shared sub-expressions, by id) and ``result``."""

    def __init__(self, obj) -> None:
        encoded = json.loads(obj.serialize())
        self.values: dict = encoded["values"]
        self.root: dict = self.values[encoded["result"]]

    def resolve(self, node):
        """``node`` with value references (and mapped function bodies) replaced by their values."""
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return self.resolve(self.values[node["valueReference"]])
            if "functionDefinitionValue" in node:
                definition = dict(node["functionDefinitionValue"])
                definition["body"] = self.resolve(self.values[definition["body"]])
                return {"functionDefinitionValue": definition}
            return {key: self.resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        return node


def expression(obj) -> Expr:
    return Expr(obj)


def calls(tree, function_name: str) -> list[dict]:
    """Arguments (references resolved) of every invocation of ``function_name``. On an
    :class:`Expr` each shared value is visited once, so counts are those of the expression graph
    rather than of its fully expanded tree; on a plain (resolved) dict, every occurrence counts."""
    found = []
    seen: set[str] = set()
    expr = tree if isinstance(tree, Expr) else None

    def follow(reference: str):
        if reference not in seen:
            seen.add(reference)
            walk(expr.values[reference])

    def walk(node):
        if isinstance(node, dict):
            if expr is not None and set(node) == {"valueReference"}:
                return follow(node["valueReference"])
            if expr is not None and "functionDefinitionValue" in node:
                return follow(node["functionDefinitionValue"]["body"])
            invocation = node.get("functionInvocationValue")
            if isinstance(invocation, dict) and invocation.get("functionName") == function_name:
                arguments = invocation.get("arguments", {})
                found.append(expr.resolve(arguments) if expr is not None else arguments)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree.root if expr is not None else tree)
    return found


def root_call(tree: Expr) -> dict:
    """The outermost invocation, references resolved."""
    return tree.resolve(tree.root)["functionInvocationValue"]


def value(node):
    """A constant node as a Python value; ``Image.constant(x)`` as x; anything else unchanged."""
    if "constantValue" in node:
        return node["constantValue"]
    if "arrayValue" in node:
        return [value(item) for item in node["arrayValue"]["values"]]
    if "dictionaryValue" in node:
        return {key: value(item) for key, item in node["dictionaryValue"]["values"].items()}
    invocation = node.get("functionInvocationValue", {})
    if invocation.get("functionName") == "Image.constant":
        return value(invocation["arguments"]["value"])
    return node


def arg_values(tree, function_name: str, argument: str) -> list:
    """The constant values passed as ``argument`` to every call of ``function_name``."""
    return [value(args[argument]) for args in calls(tree, function_name) if argument in args]


def field_filters(tree, function_name: str) -> list[tuple]:
    """(leftField, rightValue) of every metadata filter ``function_name``."""
    return [(value(a["leftField"]), value(a["rightValue"])) for a in calls(tree, function_name)
            if "leftField" in a and "rightValue" in a]


def install_fake_export(monkeypatch) -> list[dict]:
    """``ee.data``'s export calls replaced: records the export requests, answers with operation
    ``projects/my-project/operations/TASK1``; no operation is running."""
    requests: list[dict] = []

    def export_image(request_id, config):
        requests.append(config)
        return {"name": f"projects/my-project/operations/{request_id}"}

    monkeypatch.setattr(ee.data, "newTaskId", lambda count=1: ["TASK1"])
    monkeypatch.setattr(ee.data, "exportImage", export_image)
    monkeypatch.setattr(ee.data, "listOperations", lambda *a, **k: [])
    return requests
