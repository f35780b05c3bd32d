"""A config's validation errors in the words of the YAML file a person wrote, one line each.

pydantic speaks Python: ``batch_sizes: 32`` was "Input should be a valid tuple (got
32)", while the file has lists, numbers, text and mappings. Here each mistake is said
as what the key wants, with an example (its default when it has one), and what it got:
``batch_sizes: should be a list of integers such as [32, 64, 128] (got 32)``. A wrong
item of a list is said of the whole list. Every mistake of a config is one line, and a
key gets one line however many of its items are wrong.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticUndefined

from nighttune.tasks.core.errors import short_repr

# Keys whose values may hold a secret: their errors never repeat the raw value.
QUIET_KEYS = {"s3_endpoint_url", "notify_url"}

# pydantic's error types that mean "not the kind of value this key takes".
WRONG_KIND = {
    "tuple_type",
    "list_type",
    "int_type",
    "int_parsing",
    "int_from_float",
    "float_type",
    "float_parsing",
    "bool_type",
    "bool_parsing",
    "string_type",
    "dict_type",
    "model_type",
    "model_attributes_type",
    "literal_error",
    "too_short",
    "too_long",
}
# Bounds, said as a person would.
BOUNDS = {
    "greater_than": "should be above {gt}",
    "greater_than_equal": "should be at least {ge}",
    "less_than": "should be below {lt}",
    "less_than_equal": "should be at most {le}",
}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}
# An example for a list whose key has no default to show.
LIST_EXAMPLES = {int: "[32, 64, 128]", float: "[0.1, 0.2]", str: "[a, b]"}


def describe_errors(
    exc: ValidationError, model: type[BaseModel], data: Any, *, where: str = ""
) -> list[str]:
    """Every problem of ``exc`` (from validating ``data`` into ``model``), one line each,
    in the order pydantic found them; ``where`` prefixes each key (``"config."``)."""
    lines: dict[str, tuple[str, str]] = {}  # the problem without its key's section
    for error in exc.errors():
        loc = _key_part(error["loc"])
        key = (where + ".".join(map(str, loc))) if loc else (where.rstrip(".") or "config")
        line = _describe(error, key, loc=loc, model=model, data=data)
        # One value given to two keys of one name (--seed sets seed and dataset.seed)
        # is one mistake, said of the shorter key; a key is said once.
        same = line.removeprefix(key.rpartition(".")[0] + ".") if "." in key else line
        if any(said_key == key for said_key, _ in lines.values()):
            continue
        if same not in lines or len(key) < len(lines[same][0]):
            lines[same] = (key, line)
    return [line for _, line in lines.values()]


def _key_part(loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """The keys of an error's location, up to the first list index: a wrong item is
    said of its list."""
    keys: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break
        keys.append(part)
    return tuple(keys)


def _describe(
    error: ErrorDetails, key: str, *, loc: tuple[str, ...], model: type[BaseModel], data: Any
) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{key}'; remove it or check its spelling"
    if kind == "missing" and len(loc) == len(error["loc"]):
        return f"{key}: is required"
    got = _value_at(data, loc) if len(loc) < len(error["loc"]) else error.get("input")
    field = _field(model, loc)
    ctx = error.get("ctx") or {}
    if field is not None and (kind in WRONG_KIND or len(loc) < len(error["loc"])):
        annotation, default = field
        message = f"should be {wanted(annotation, default)}"
    elif kind in BOUNDS:
        message = BOUNDS[kind].format(**{k: _number(v) for k, v in ctx.items()})
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        message = "is empty; give a value or leave the key out"
    else:
        message = error["msg"].removeprefix("Value error, ").removeprefix("Input ")
    if not loc or key.rsplit(".", 1)[-1] in QUIET_KEYS:  # the message names the values
        return f"{key}: {message}"
    return f"{key}: {message} (got {short_repr(got)})"


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value_at(data: Any, loc: tuple[str, ...]) -> Any:
    for part in loc:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _field(model: type[BaseModel], loc: tuple[str, ...]) -> tuple[Any, Any] | None:
    """The annotation and default of the field at ``loc`` (through nested models)."""
    annotation: Any = model
    default: Any = None
    for part in loc:
        inner = _model_in(annotation)
        if inner is None or part not in inner.model_fields:
            return None
        info = inner.model_fields[part]
        annotation = info.annotation
        default = None if info.default is PydanticUndefined else info.default
    return (annotation, default) if loc else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for candidate in (_unwrap(annotation), *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _unwrap(annotation: Any) -> Any:
    """``X`` of ``X | None`` and of ``Annotated[X, ...]``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kept = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(kept[0]) if len(kept) == 1 else annotation
    return annotation


def wanted(annotation: Any, default: Any = None) -> str:
    """What a key of type ``annotation`` takes, in YAML's words, with an example:
    ``a list of integers such as [32, 64, 128]``, ``one of: auto, max, min``."""
    annotation = _unwrap(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin is tuple or annotation is tuple:
        return _list_words(args, default)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        names = list(annotation.model_fields)[:2]
        return f"a mapping of keys ({', '.join(f'{n}: ...' for n in names)})"
    if origin is dict or annotation is dict:
        return "a mapping (key: value)"
    words = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    said = words.get(annotation, "another kind of value")
    if default is not None and not isinstance(default, bool | tuple | dict):
        return f"{said} such as {default}"
    return said


def _list_words(args: tuple[Any, ...], default: Any) -> str:
    item = _unwrap(args[0]) if args else str
    plural = {int: "integers", float: "numbers", str: "text values"}.get(item, "values")
    fixed = len(args) if args and args[-1] is not Ellipsis else None
    if default:
        example = "[" + ", ".join(str(v) for v in default) + "]"
    elif fixed == 2 and item is int:
        example = "[28, 28]"
    else:
        example = LIST_EXAMPLES.get(item, "[...]")
    count = f"{NUMBER_WORDS.get(fixed, fixed)} " if fixed else ""
    return f"a list of {count}{plural} such as {example}"
