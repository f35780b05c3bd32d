"""Keys of one config that contradict each other: refused, one line each, never settled
silently.

Each of these pairs answers the same question twice, and one answer would be dropped
without a word: ``dataset.name`` and ``dataset.builder`` both say what to train on
(the builder won, and the screen named the other); ``model.kind`` and ``model.builder``
both say what model; the built-in models' shape (``hidden_units``, ``filters``,
``dropout``) next to your own builder, ``filters`` next to an MLP, a catalog dataset's
settings (``data_dir``, ``image_size``, ``channels``) next to your data builder, and
``kwargs`` with no builder to receive them. Only keys the user gave count (the YAML
file and the flags, before defaults): a default never contradicts anything.

Settings of an option that another key turned off (``select_alpha`` under ``select:
best``, ``promote_margin`` under ``promote: always``) are not contradictions: a file
keeps them while a flag switches the option for one run.
"""

from __future__ import annotations

from typing import Any

from nighttune.tasks.core.errors import short_repr

# What each key means beside a builder of its section ({value}: the key's, {builder}: the
# builder's), and how to settle it.
BESIDE_A_BUILDER = {
    "dataset": {
        "name": "dataset.name ({value}) and dataset.builder ({builder}) both say what to "
        "train on; keep one",
        "data_dir": "dataset.data_dir is where TFDS finds catalog datasets, not "
        "dataset.builder's ({builder}); remove it",
        "image_size": "dataset.image_size resizes catalog datasets and image folders, not "
        "dataset.builder's data ({builder}); resize in your builder, or remove it",
        "channels": "dataset.channels converts catalog datasets and image folders, not "
        "dataset.builder's data ({builder}); convert in your builder, or remove it",
    },
    "model": {
        "kind": "model.kind ({value}) and model.builder ({builder}) both say what model to "
        "train; keep one",
        **{
            key: f"model.{key} shapes the built-in models, not model.builder's ({{builder}}); "
            "give your builder its settings in model.kwargs, or remove it"
            for key in ("hidden_units", "filters", "dropout")
        },
    },
}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) and len(value) <= 60 else short_repr(value, 60)


def contradictions(data: dict[str, Any]) -> list[str]:
    """One line for each pair of keys in ``data`` (a config as given: YAML and flags,
    nested) that contradict each other, saying which and how to settle it."""
    found: list[str] = []
    for section, keys in BESIDE_A_BUILDER.items():
        given = data.get(section)
        if not isinstance(given, dict):
            continue
        if given.get("builder") is not None:
            builder = _shown(given["builder"])
            found += [
                said.format(value=_shown(given[key]), builder=builder)
                for key, said in keys.items()
                if key in given
            ]
        elif "kwargs" in given:
            found.append(
                f"{section}.kwargs are passed to {section}.builder, and none is given: "
                f"set {section}.builder: module:function, or remove {section}.kwargs"
            )
    model = data.get("model")
    if isinstance(model, dict) and "filters" in model and model.get("builder") is None:
        kind = model.get("kind", "mlp")
        if kind != "cnn":
            found.append(
                f"model.filters sets the cnn's conv blocks, and model.kind is {_shown(kind)}: "
                "set model.kind: cnn, or remove model.filters"
            )
    return found
