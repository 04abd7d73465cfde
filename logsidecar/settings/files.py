"""Reading a configuration file: TOML, or YAML/JSON, with `${VAR}` replaced from the environment.

Invariants:
- A file is at most MAX_CONFIG_BYTES, and a YAML document at most MAX_CONFIG_NODES values once its
  aliases are expanded (an alias bomb is refused in milliseconds, naming the file).
- Every value a `${VAR}` brought is remembered as a secret (`logsidecar.redact`, shown as `${VAR}`),
  and its key path is recorded so that no error message quotes it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logsidecar import redact
from logsidecar.settings.errors import ConfigError, format_loc

MAX_CONFIG_BYTES = 1024 * 1024  # a configuration is a few KiB; anything this big is not one
MAX_CONFIG_NODES = 100_000  # values in a YAML document once its aliases are expanded


def load_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse the file by its extension (.toml; .yaml, .yml, .json) into plain data, with `${VAR}`
    replaced from `env` (`$${` is a literal `${`). Raises ConfigError with a one-line reason.
    Every value a `${VAR}` brought is remembered as a secret (`logsidecar.redact`)."""
    return _load(path, env, set())


def _load(
    path: str | os.PathLike[str], env: Mapping[str, str] | None, expanded: set[tuple[Any, ...]]
) -> dict[str, Any]:
    """load_file, adding to `expanded` the key path of every value that a `${VAR}` expansion built."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(
            [f"{file}: unsupported file type {suffix or '(none)'!r}; expected .toml, .yaml, .yml or .json"]
        )
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError([f"{file}: larger than {MAX_CONFIG_BYTES} bytes; not a configuration file"])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{file}: cannot read: {reason}"]) from None
    try:
        if suffix == ".toml":
            try:
                data: Any = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError([f"{file}: invalid TOML: {exc}"]) from None
        else:
            data = _load_yaml(text, file)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                [f"{file}: expected a mapping of settings at the top level, got {type(data).__name__}"]
            )
        errors: list[str] = []
        result = _expand(data, env or {}, (), errors, expanded)
    except RecursionError:  # nesting (or a recursive alias) deeper than any configuration
        raise ConfigError([f"{file}: nested too deeply; not a configuration file"]) from None
    if errors:
        raise ConfigError(errors)
    return result


def _load_yaml(text: str, file: Path) -> Any:
    """YAML (or JSON) with safe types, refusing documents whose aliases expand to more than
    MAX_CONFIG_NODES values (an alias bomb: a few lines that expand to billions of nodes)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        expanded = _expanded_nodes(node)
        if expanded > MAX_CONFIG_NODES:
            raise ConfigError(
                [
                    f"{file}: YAML aliases expand to more than {MAX_CONFIG_NODES} values "
                    "(an alias bomb?); write the values out instead"
                ]
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{file}: invalid YAML: {problem}{where}"]) from None
    finally:
        loader.dispose()


def _expanded_nodes(root: Any) -> int:
    """How many nodes the document has once every alias is replaced by what it names, computed
    on the composed graph (an alias is the same node object; each node's size is computed once)."""
    import yaml

    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a node that contains itself (a recursive alias) counts once
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        total = min(total, MAX_CONFIG_NODES + 1)  # enough to refuse; keeps the numbers small
        sizes[id(node)] = total
        return total

    return size(root)


def load_file_lenient(
    path: str | os.PathLike[str], env: Mapping[str, str], expanded: set[tuple[Any, ...]]
) -> tuple[dict[str, Any], list[str]]:
    """Like load_file, but unset ${VAR}s are returned as errors next to the data (so that the
    validation errors can be reported in the same run)."""
    try:
        return _load(path, env, expanded), []
    except ConfigError as exc:
        if not all("environment variable" in e for e in exc.errors):
            raise
        data = _load(path, _EveryNameSet(env), expanded)
        return data, exc.errors


class _EveryNameSet(dict[str, str]):
    """An environment in which every variable exists (unset ones read as "")."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> str:
        return ""


_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(
    data: Any,
    env: Mapping[str, str],
    loc: tuple[Any, ...],
    errors: list[str],
    expanded: set[tuple[Any, ...]],
) -> Any:
    if isinstance(data, dict):
        return {k: _expand(v, env, (*loc, k), errors, expanded) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand(v, env, (*loc, i), errors, expanded) for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "${"
            if name not in env:
                errors.append(f"{format_loc(loc)}: environment variable {name} is not set")
                return ""
            expanded.add(loc)
            # Whatever the variable holds may be a secret: never shown again, as itself.
            redact.remember(env[name], f"${{{name}}}", whole_word=True)
            return env[name]

        return _VARIABLE.sub(substitute, data)
    return data
