"""The metric and label names a PromQL expression uses, read roughly (no full parser):
enough to check alert rules and dashboard queries against nodeagent/metrics/catalog.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nodeagent.metrics import catalog

# Labels Prometheus adds to every scraped series (deploy/prometheus/prometheus.yml on main
# sets cluster), and the bucket label of a histogram.
TARGET_LABELS = frozenset({"job", "instance", "cluster"})
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "offset", "bool", "inf", "nan"}
)  # fmt: skip
NOT_VIGIL = frozenset({"up"})  # the one series of Prometheus itself the rules read
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_SELECTOR = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?")


@dataclass
class Names:
    metrics: set[str] = field(default_factory=set)  # as written (a histogram's _bucket...)
    errors: list[str] = field(default_factory=list)


def catalog_metric(name: str) -> catalog.Metric | None:
    """The catalog's metric a series name belongs to (a histogram's _bucket, _sum, _count)."""
    if name in catalog.BY_NAME:
        return catalog.BY_NAME[name]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in catalog.BY_NAME and catalog.BY_NAME[base].kind == "histogram":
            return catalog.BY_NAME[base]
    return None


def all_labels() -> set[str]:
    return {label for m in catalog.ALL for label in m.labels} | TARGET_LABELS | {"le"}


def names(expr: str) -> Names:
    """Every series name in `expr` and every label name it matches or groups by, with an
    error for each that the catalog (or Prometheus's target labels) does not have."""
    out = Names()
    text = _STRING.sub('""', _VARIABLE.sub("", expr))
    for match in _SELECTOR.finditer(text):
        metric, matchers = match.group(1), match.group(2)
        labels = set(_MATCHER.findall(matchers))
        if metric is None or metric in KEYWORDS:
            continue
        known = TARGET_LABELS | {"__name__"}
        found = catalog_metric(metric)
        if found is not None:
            known |= set(found.labels) | ({"le"} if metric.endswith("_bucket") else set())
        for label in sorted(labels - known):
            out.errors.append(f"{metric}: no label {label!r} in the catalog")
    text = _SELECTOR.sub(lambda m: (m.group(1) or "") + " ", text)
    for match in _GROUPING.finditer(text):
        for label in re.findall(r"[a-zA-Z_]\w*", match.group(2)):
            if label not in all_labels():
                out.errors.append(f"{match.group(1)} ({label}): no such label in the catalog")
    text = _RANGE.sub(" ", _GROUPING.sub(" ", text))
    for match in _IDENT.finditer(text):
        ident, call = match.group(1), match.group(2)
        if call or ident.lower() in KEYWORDS:
            continue  # a function or aggregation, or a keyword
        out.metrics.add(ident)
        if ident not in NOT_VIGIL and catalog_metric(ident) is None:
            out.errors.append(f"{ident}: not a metric of the catalog")
    return out
