"""What a PromQL expression reads: the vector selectors of its syntax tree (``promql_parser``, Prometheus'
own grammar in Rust), and the series every source soilclay's rules and dashboards use can produce: soilclay's
exporter (:mod:`~soilclay.monitoring.catalogue`), TF Serving (:mod:`~soilclay.monitoring.tf_serving`),
Airflow through the official chart's statsd-exporter (:mod:`~soilclay.monitoring.airflow_names`), and ``up``.
"""

from __future__ import annotations

from functools import cache

from soilclay.monitoring.airflow_names import series_labels
from soilclay.monitoring.catalogue import BY_NAME
from soilclay.monitoring.tf_serving import TF_SERVING_METRICS


def selectors(expr: str) -> list[tuple[str | None, dict[str, str | None]]]:
    """(metric name, {label: value}) of every vector selector of ``expr`` (the value of an ``=`` matcher,
    None for the other matchers); raises ValueError if ``expr`` does not parse."""
    import promql_parser

    found: list[tuple[str | None, dict[str, str | None]]] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {m.name: m.value if m.op == promql_parser.MatchOp.Equal else None
                        for m in node.matchers.matchers}
            name = node.name or matchers.pop("__name__", None)
            matchers.pop("__name__", None)
            found.append((name, matchers))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (selectors without a fixed name are left out)."""
    return {name for name, _ in selectors(expr) if name}


@cache
def tf_serving_series() -> dict[str, frozenset[str]]:
    """TF Serving's series names (a histogram's ``_bucket``/``_sum``/``_count``) and their labels."""
    out: dict[str, frozenset[str]] = {}
    for m in TF_SERVING_METRICS:
        if m.kind == "histogram":
            out[f"{m.name}_bucket"] = frozenset(m.labels) | {"le"}
            out[f"{m.name}_sum"] = out[f"{m.name}_count"] = frozenset(m.labels)
        else:
            out[m.name] = frozenset(m.labels)
    return out


def known_labels(name: str) -> frozenset[str] | None:
    """The labels the series ``name`` carries (besides job and instance), or None if no source exports it."""
    if name in BY_NAME:
        return frozenset(BY_NAME[name].labels)
    if name in tf_serving_series():
        return tf_serving_series()[name]
    if (labels := series_labels(name)) is not None:
        return frozenset(labels)
    return frozenset() if name == "up" else None


def is_soilclay(expr: str) -> bool:
    """Whether every metric ``expr`` reads comes from soilclay's own exporter."""
    names = metric_names(expr)
    return bool(names) and all(n in BY_NAME for n in names)
