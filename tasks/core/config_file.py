"""Reading a YAML config file that may not be what it says: bounded before it is trusted.

A config is a few hundred bytes; a file over `MAX_CONFIG_BYTES` is refused unread. YAML
aliases (``&anchor`` / ``*alias``) let a small file stand for an exponentially large
value (an alias bomb): parsing is cheap, but anything that walks the value — a repr
in an error message, validation of a list — is not. The document is composed first
and its size as if every alias were written out counted without expanding it.
"""

from __future__ import annotations

from typing import Any

from tasks.core.errors import ConfigError

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
