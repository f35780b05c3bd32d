"""Command-line flags made from the config models, so each setting is described once.

A `Flag` names the `TuneConfig` keys it sets; its type, help and default come from
those fields (`tasks.core.config`). A command declares ``overrides: Overrides``
where its generated flags belong; `with_flags` puts them there and hands the command
the values given, as dotted keys, for `load_tune_config` (None: not given, the
config file's value or the model's default stands).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from nighttune.tasks.core.config import TuneConfig

Overrides = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Flag:
    """``--name`` on the command line, setting ``keys`` (dotted `TuneConfig` keys)."""

    name: str
    keys: tuple[str, ...]

    @property
    def param(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")


def flag(name: str, *keys: str) -> Flag:
    return Flag(name, keys)


DATA_FLAGS = (
    flag("--dataset", "dataset.name"),
    flag("--data-dir", "dataset.data_dir"),
    flag("--cache-dir", "cache_dir"),
    flag("--image-size", "dataset.image_size"),
    flag("--seed", "seed", "dataset.seed"),
)
TUNE_FLAGS = (
    *DATA_FLAGS,
    flag("--model", "model.kind"),
    flag("--batch-sizes", "batch_sizes"),
    flag("--patiences", "patiences"),
    flag("--max-epochs", "max_epochs"),
    flag("--monitor", "monitor"),
    flag("--monitor-mode", "monitor_mode"),
    flag("--min-delta", "min_delta"),
    flag("--training-loop", "training_loop"),
    flag("--xla", "xla"),
    flag("--memory-budget-mb", "memory_budget_mb"),
    flag("--lr-schedule", "lr_schedule"),
    flag("--lr-method", "lr_range.method"),
    flag("--start-lr", "lr_range.start_lr"),
    flag("--end-lr", "lr_range.end_lr"),
    flag("--lr-steps", "lr_range.steps"),
    flag("--lr-bracket", "lr_bracket.width"),
    flag("--bracket-factor", "lr_bracket.factor"),
    flag("--halving-eta", "lr_bracket.eta"),
    flag("--first-rung", "lr_bracket.first_rung"),
    flag("--bracket-center", "lr_bracket.center"),
    flag("--warm-start", "warm_start"),
    flag("--hurdle", "hurdle"),
    flag("--select", "select"),
    flag("--select-alpha", "select_alpha"),
    flag("--export-to", "export_to"),
    flag("--s3-endpoint-url", "s3_endpoint_url"),
    flag("--promote", "promote"),
    flag("--promote-margin", "promote_margin"),
    flag("--notify-url", "notify_url"),
    flag("--time-budget", "time_budget"),
    flag("--deadline", "deadline"),
    flag("--timezone", "timezone"),
    flag("--tensorboard", "tensorboard"),
    flag("--dispatch", "dispatch"),
    flag("--fresh", "fresh"),
)
LR_FIND_FLAGS = (
    *DATA_FLAGS,
    flag("--model", "model.kind"),
    flag("--start-lr", "lr_range.start_lr"),
    flag("--end-lr", "lr_range.end_lr"),
    flag("--steps", "lr_range.steps"),
    flag("--method", "lr_range.method"),
)


def field_of(dotted: str, model: type[BaseModel] = TuneConfig) -> FieldInfo:
    """The pydantic field a dotted key names (``lr_range.steps``)."""
    head, _, rest = dotted.partition(".")
    info = model.model_fields[head]
    if not rest:
        return info
    assert isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    return field_of(rest, info.annotation)


def _comma_ints(name: str, example: str, count: int | None) -> Callable[[str], list[int]]:
    """A parser of ``32,64,128`` (``count`` numbers, or any number when None)."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(part) for part in text.split(",")]  # "32,,64": an empty part
        except ValueError:
            values = []
        if not values or (count is not None and len(values) != count):
            raise typer.BadParameter(f"wants {name} such as {example} (got {text!r})")
        return values

    return parse


def _bare(annotation: Any) -> Any:
    """``X`` of ``X | None``."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _default_text(info: FieldInfo) -> str:
    default = info.default
    if default is None or "Default:" in (info.description or ""):
        return ""
    if isinstance(default, bool):
        shown = "on" if default else "off"
    else:
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
    return f" Default: {shown}."


def field_help(dotted: str) -> str:
    """A field's description and, unless it says its own, its default."""
    info = field_of(dotted)
    return (info.description or "") + _default_text(info)


# How --help names a value, as people write it; by key, else by type.
METAVARS = {
    "dataset.name": "NAME|FOLDER",
    "dataset.data_dir": "PATH",
    "cache_dir": "PATH",
    "export_to": "PATH|s3://BUCKET/PREFIX",
    "s3_endpoint_url": "URL",
    "monitor": "METRIC",
    "notify_url": "URL",
    "time_budget": "SECONDS|90m|2h",
    "deadline": "HH:MM",
    "timezone": "ZONE",
}
FLAG_TYPES = {"time_budget": str}  # read as text: the field parses 90m, 2h, 1h30m
TYPE_METAVARS = {int: "INTEGER", float: "NUMBER", str: "TEXT"}


def option(f: Flag) -> inspect.Parameter:
    """The typer parameter of a flag, typed and described by its first key's field."""
    info = field_of(f.keys[0])
    kind = FLAG_TYPES.get(f.keys[0], _bare(info.annotation))
    help_text = field_help(f.keys[0])
    decls: tuple[str, ...] = (f.name,)
    extra: dict[str, Any] = {}
    if kind is bool:
        decls = (f"{f.name}/--no-{f.name.removeprefix('--')}",)
    elif get_origin(kind) is tuple:
        args = get_args(kind)
        if args[-1] is Ellipsis:
            extra = dict(parser=_comma_ints("comma-separated integers", "32,64,128", None))
            extra["metavar"] = "INTEGER,INTEGER,..."
        else:
            extra = dict(parser=_comma_ints("HEIGHT,WIDTH", "28,28", len(args)))
            extra["metavar"] = "HEIGHT,WIDTH"
        kind = str  # the parser makes the list
    elif get_origin(kind) is Literal:
        extra["metavar"] = "|".join(map(str, get_args(kind)))
    else:
        extra["metavar"] = METAVARS.get(f.keys[0], TYPE_METAVARS.get(kind))
    typed = Annotated[kind | None, typer.Option(*decls, help=help_text, **extra)]  # type: ignore[valid-type]
    return inspect.Parameter(
        f.param, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=typed
    )


def with_flags(*flags: Flag) -> Callable[[F], F]:
    """Give a command ``flags`` in place of its ``overrides`` parameter (see module doc)."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        params: list[inspect.Parameter] = []
        for param in signature.parameters.values():
            params += [option(f) for f in flags] if param.name == "overrides" else [param]

        @functools.wraps(command)
        def run(**given: Any) -> Any:
            overrides: Overrides = {}
            for f in flags:
                value = given.pop(f.param)
                overrides.update((key, value) for key in f.keys)
            return command(overrides=overrides, **given)

        run.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        )
        run.__annotations__ = {}  # typer reads the signature's, already resolved
        return run  # type: ignore[return-value]

    return decorate
