"""The interpreter: :class:`Evaluator` walks a serialised expression (``values`` by id and ``result``),
resolving references in environments (one per function call) and invoking the modelled algorithms
(:data:`~tests.earthengine.evaluator.table.ALGORITHMS`); :func:`evaluate` and :func:`evaluator_for`
accept an ee object, serialised JSON or an offline ``Expr``."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.earthengine.evaluator.model import FLOAT64, INT, Band, Catalogue, Img, Unsupported
from tests.earthengine.evaluator.table import ALGORITHMS

# --------------------------------------------------------------------------- evaluation


class _Env:
    def __init__(self, args: dict[str, Any] | None = None, parent: _Env | None = None) -> None:
        self.args = args or {}
        self.parent = parent
        self.memo: dict[str, Any] = {}

    def lookup(self, name: str) -> Any:
        env: _Env | None = self
        while env is not None:
            if name in env.args:
                return env.args[name]
            env = env.parent
        raise Unsupported(f"argumentReference {name!r} outside the function defining it")


class Evaluator:
    """Evaluates a serialised expression (``values`` by id and ``result``) over a catalogue."""

    def __init__(self, catalogue: Catalogue, shape: tuple[int, int] | None = None,
                 focal_skip_masked: bool = True) -> None:
        self.catalogue = catalogue
        self.focal_skip_masked = focal_skip_masked  # see image_focal_mean
        if shape is None:
            for images in catalogue.values():
                for image in images:
                    shape = next(iter(image.bands.values())).shape
                    break
                if shape is not None:
                    break
        if shape is None:
            raise ValueError("give the pixel grid's shape (the catalogue holds no image)")
        self.shape = tuple(shape)
        self.values: dict[str, Any] = {}
        self.loaded: list[str] = []  # system:index of every image a collection load returned
        self.called: list[str] = []  # every function evaluated, in order

    # -- nodes ------------------------------------------------------------------------------------
    def run(self, values: dict, result: str) -> Any:
        self.values = values
        return self.node({"valueReference": result}, _Env())

    def node(self, node: Any, env: _Env) -> Any:
        if not isinstance(node, dict):
            raise Unsupported(f"unexpected expression node {node!r}")
        if "constantValue" in node:
            return node["constantValue"]
        if "nullValue" in node:
            return None
        if "arrayValue" in node:
            return [self.node(v, env) for v in node["arrayValue"].get("values", [])]
        if "dictionaryValue" in node:
            return {k: self.node(v, env) for k, v in node["dictionaryValue"].get("values", {}).items()}
        if "valueReference" in node:
            ref = node["valueReference"]
            if ref not in env.memo:
                env.memo[ref] = self.node(self.values[ref], env)
            return env.memo[ref]
        if "argumentReference" in node:
            return env.lookup(node["argumentReference"])
        if "functionDefinitionValue" in node:
            return self._function(node["functionDefinitionValue"], env)
        if "functionInvocationValue" in node:
            invocation = node["functionInvocationValue"]
            if "functionName" not in invocation:
                raise Unsupported("functionInvocationValue of a functionReference (a computed function)")
            name = invocation["functionName"]
            rule = ALGORITHMS.get(name)
            if rule is None:
                raise Unsupported(f"Earth Engine algorithm {name} is not modelled by the offline evaluator")
            args = {k: self.node(v, env) for k, v in invocation.get("arguments", {}).items()}
            self.called.append(name)
            try:
                inspect.signature(rule).bind(self, **args)
            except TypeError as exc:
                raise Unsupported(f"{name}: arguments {sorted(args)} not modelled ({exc})") from exc
            return rule(self, **args)
        raise Unsupported(f"expression node of kind {sorted(node)} is not modelled")

    def _function(self, definition: dict, env: _Env) -> Callable[..., Any]:
        names = list(definition.get("argumentNames", []))
        body = definition["body"]

        def call(*args: Any) -> Any:
            if len(args) != len(names):
                raise Unsupported(f"function of {names} called with {len(args)} arguments")
            inner = _Env(dict(zip(names, args, strict=True)), env)
            return self.node({"valueReference": body}, inner)

        return call

    # -- helpers -------------------------------------------------------------------------------------
    def constant(self, value: Any) -> Img:
        if isinstance(value, Img):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unsupported(f"Image.constant of {value!r} (only a number is modelled)")
        ptype = INT if isinstance(value, int) else FLOAT64
        return Img({"constant": Band(np.full(self.shape, float(value)), np.ones(self.shape), ptype)})


def evaluate(expression: Any, catalogue: Catalogue, shape: tuple[int, int] | None = None) -> Any:
    """Evaluate an ee object, a serialised expression (JSON text or dict with ``values`` and
    ``result``) or a ``tests.earthengine.offline.Expr`` over ``catalogue``."""
    evaluator = Evaluator(catalogue, shape)
    values, result = _serialised(expression)
    return evaluator.run(values, result)


def evaluator_for(expression: Any, catalogue: Catalogue, shape: tuple[int, int] | None = None,
                  **options: Any) -> tuple[Any, Evaluator]:
    """Like :func:`evaluate`, also returning the evaluator (what it loaded and called)."""
    evaluator = Evaluator(catalogue, shape, **options)
    values, result = _serialised(expression)
    return evaluator.run(values, result), evaluator


def _serialised(expression: Any) -> tuple[dict, str]:
    if hasattr(expression, "serialize"):
        expression = expression.serialize()
    if isinstance(expression, str):
        expression = json.loads(expression)
    if isinstance(expression, dict):
        return expression["values"], expression["result"]
    if hasattr(expression, "values") and hasattr(expression, "root"):  # tests.earthengine.offline.Expr
        [result] = [k for k, v in expression.values.items() if v is expression.root]
        return expression.values, result
    raise TypeError(f"cannot evaluate {type(expression).__name__}")
