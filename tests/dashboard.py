"""Reads deploy/grafana/pushhub.json: its panels' PromQL, and the metric names
and grouping labels each query names."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "pushhub.json"
# Grafana's range variable; Prometheus itself needs a real range.
RATE_INTERVAL = "$__rate_interval"

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTORS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()")
_NUMBER_OR_KEYWORD = {"by", "without", "on", "ignoring", "and", "or", "unless", "bool", "offset"}


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metrics a query selects: identifiers that are not functions, keywords,
    label names in selectors or groupings, strings or ranges."""
    bare = _RANGES.sub("", _SELECTORS.sub("", _STRINGS.sub("", expr)))
    bare = _GROUPING.sub("", bare)
    found = set()
    for match in _IDENTIFIER.finditer(bare):
        name = match.group()
        # A function name is followed by "(": the regex's lookahead left it out,
        # but its last letters still match; whole words only.
        start, end = match.span()
        if (start and (bare[start - 1].isalnum() or bare[start - 1] == "_")) or (
            end < len(bare) and (bare[end].isalnum() or bare[end] == "_")
        ):
            continue
        if name not in _NUMBER_OR_KEYWORD:
            found.add(name)
    return found


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for group in _GROUPING.findall(expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    return labels
