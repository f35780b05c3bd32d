"""Configs from outside (a YAML file, flags on top) into a `TuneConfig`, one-line errors.

A YAML file may not be what it says, so it is bounded before it is trusted. A config
is a few hundred bytes; a file over `MAX_CONFIG_BYTES` is refused unread. YAML
aliases (``&anchor`` / ``*alias``) let a small file stand for an exponentially large
value (an alias bomb): parsing is cheap, but anything that walks the value (a repr
in an error message, validation of a list) is not. The document is composed first
and its size as if every alias were written out counted without expanding it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.contradictions import contradictions
from nighttune.tasks.core.errors import ConfigError
from nighttune.tasks.core.yaml_words import describe_errors

M = TypeVar("M", bound=BaseModel)

MAX_CONFIG_BYTES = 1 * 2**20
MAX_CONFIG_NODES = 100_000  # YAML nodes once aliases are expanded (a real config: < 200)


def read_yaml(path: str) -> Any:
    """A YAML file's value, refused with one line when it is too large, does not parse,
    or expands (through aliases) past `MAX_CONFIG_NODES` nodes: an alias bomb."""
    import yaml

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {path} is over {MAX_CONFIG_BYTES} bytes; is it the right file?")
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node) > MAX_CONFIG_NODES:
            raise ConfigError(
                f"config {path} expands to over {MAX_CONFIG_NODES} values through YAML "
                "aliases (&anchor / *alias); write the values out"
            )
        return yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None


def _expanded_size(root: Any) -> int:
    """Nodes of a composed YAML document as if every alias were written out (memoized:
    a shared node is counted once per use without being walked again)."""
    import yaml

    sizes: dict[int, int] = {}
    order: list[Any] = []
    stack, seen = [root], set()
    while stack:  # children before parents, without recursion (depth is the input's)
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
    for node in reversed(order):
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        sizes[id(node)] = min(1 + sum(sizes.get(id(c), 1) for c in children), 2**62)
    return sizes[id(root)]


def load_tune_config(path: str | None, overrides: dict[str, Any]) -> TuneConfig:
    """A YAML file (if any) with flag ``overrides`` on top; dotted keys reach nested specs.

    Raises:
        ConfigError: unreadable file, YAML that is not a mapping; or, every one of them
            at once: an unknown key, a value the models refuse, keys that contradict
            each other (`tasks.core.contradictions`).
    """

    data: dict[str, Any] = {}
    if path:
        loaded = read_yaml(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config {path} must be a mapping of keys (dataset:, batch_sizes:, ...), "
                f"not a {type(loaded).__name__}"
            )
        data = loaded or {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"config key '{part}' must be a mapping (got {child!r})")
            node = child
        node[leaf] = value
    _set_code_path(data, path)
    problems = contradictions(data)
    try:
        config = parse(TuneConfig, data)
    except ConfigError as exc:  # every mistake of the file at once
        raise ConfigError(*problems, str(exc)) from None
    if problems:
        raise ConfigError(*problems)
    return config


def _set_code_path(data: dict[str, Any], path: str | None) -> None:
    """Where builders' modules are looked for: ``code_dir`` (relative to the config
    file), then the config file's folder (then, at import, the working directory)."""
    base = Path(path).expanduser().resolve().parent if path else None
    dirs = []
    code_dir = data.get("code_dir")
    if isinstance(code_dir, str) and code_dir:
        dirs.append(str(base / Path(code_dir).expanduser()) if base else code_dir)
    if base is not None:
        dirs.append(str(base))
    for section in ("model", "dataset"):
        spec = data.get(section)
        if isinstance(spec, dict) and spec.get("builder") and "code_path" not in spec:
            spec["code_path"] = dirs


def parse(model: type[M], data: dict[str, Any], where: str = "") -> M:
    """Validate ``data`` into ``model``, raising a `ConfigError` of one line per mistake.

    Args:
        model: the pydantic model class.
        data: raw values (from YAML, flags, or code).
        where: a prefix naming the section, e.g. ``"dataset."``.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(*describe_errors(exc, model, data, where=where)) from None


def deep_merge(base: dict[str, Any], given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``given`` over ``base``, mapping into mapping (a list or value replaces whole);
    and the dotted keys ``given`` set, sorted."""
    merged = dict(base)
    set_here: list[str] = []
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key], inner = deep_merge(base[key], value)
            set_here += [f"{key}.{k}" for k in inner]
        else:
            merged[key] = value
            set_here.append(key)
    return merged, sorted(set_here)
