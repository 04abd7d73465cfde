"""What a PromQL expression names, read with regular expressions (enough for the expressions of our
dashboard and alert rules): `metric_names_in(expr)` and `labels_in(expr)`."""

from __future__ import annotations

import re

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}


def metric_names_in(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or strings)."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def labels_in(expr: str) -> set[str]:
    """Labels an expression matches on in its selectors or groups by."""
    selectors = re.findall(r"\{([^}]*)\}", expr)
    labels = {name for selector in selectors for name in re.findall(r"(\w+)\s*[=!]~?", selector)}
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {name.strip() for name in grouping.split(",") if name.strip()}
    return labels
