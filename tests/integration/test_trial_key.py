"""One key for a trial: the local store and a deployment child's hand-off are keyed by
the config's trial part alone (`TrialSpec`, an allow-list). What happens around the
trials (the grid's other batch sizes, export, selection, notification, time) reuses
finished work; what a trial computes from retrains; ``fresh`` retrains and is never
itself reused."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from nighttune.flows.target import export_target
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.config_file import load_tune_config
from nighttune.tasks.core.records import LRSweep, TrialResult
from nighttune.tasks.dispatch.handoff import (
    handoff_slot,
    publish_trial,
    read_published,
    reusable_result,
)
from nighttune.tasks.tuning.training import trial_key

BASE = {"batch_sizes": [32, 64], "patiences": [2, 3], "max_epochs": 4}
_modules = itertools.count()


def config(tmp_path: Path, **changes) -> TuneConfig:
    return load_tune_config(None, {**BASE, "export_to": str(tmp_path / "exports"), **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_sizes": [32, 64, 256]},  # adding a batch size to the grid
        {"tensorboard": False},
        {"code_dir": "."},
        {"notify_url": "https://hooks.example.com/services/T0/B0/secret"},
        {"time_budget": "2h"},
        {"deadline": "06:00"},
        {"select": "cheapest_within_noise"},
        {"promote": "never"},
        {"cache_dir": "elsewhere"},
        {"trial_timeout_s": 60},
        {"fresh": True},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_what_happens_around_the_trials_reuses_them(tmp_path, changes) -> None:
    before, after = config(tmp_path), config(tmp_path, **changes)
    assert trial_key(after.trial, 32) == trial_key(before.trial, 32)
    slots = [handoff_slot(c.trial, 32, target=export_target(c)) for c in (after, before)]
    assert slots[0].path == slots[1].path


@pytest.mark.parametrize(
    "changes",
    [
        {"max_epochs": 5},
        {"patiences": [2, 4]},
        {"seed": 1},
        {"lr_range": {"method": "valley"}},
        {"lr_range": {"start_lr": 1e-5}},
        {"lr_schedule": "cosine"},
        {"monitor": "val_loss"},
        {"model": {"hidden_units": [64]}},
        {"dataset": {"val_fraction": 0.2}},
    ],
    ids=lambda changes: f"{next(iter(changes))}={next(iter(changes.values()))}",
)
def test_what_a_trial_computes_from_retrains(tmp_path, changes) -> None:
    before, after = config(tmp_path), config(tmp_path, **changes)
    assert trial_key(after.trial, 32) != trial_key(before.trial, 32)


def test_a_changed_builder_module_retrains(tmp_path) -> None:
    name = f"keyed_model_{next(_modules)}"
    module = tmp_path / f"{name}.py"
    module.write_text("def build(input_shape, num_classes):\n    return 1\n")
    spec = {"builder": f"{name}:build", "code_path": [str(tmp_path)]}
    first = trial_key(config(tmp_path, model=spec).trial, 32)
    module.write_text("def build(input_shape, num_classes):\n    return 2\n")
    assert trial_key(config(tmp_path, model=spec).trial, 32) != first
    # Where the module was found is not part of it: the same file from another folder.
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / module.name).write_text(module.read_text())
    moved = trial_key(config(tmp_path, model=dict(spec, code_path=[str(copy)])).trial, 32)
    assert moved == trial_key(config(tmp_path, model=spec).trial, 32)


def test_the_local_key_is_the_hand_off_key_and_what_the_trainer_resolved(tmp_path) -> None:
    spec = config(tmp_path).trial
    local = trial_key(spec, 32, fingerprint="abc", lr=0.01, jit_compile=True, streamed=False)
    shared = trial_key(spec, 32)
    assert {k: local[k] for k in shared} == shared
    assert set(local) - set(shared) == {"fingerprint", "lr", "jit_compile", "streamed"}


def published(tmp_path: Path, cfg: TuneConfig, lr: float) -> None:
    """A child's result for batch size 32 (no models: what the parent reads is the rows)."""
    sweep = LRSweep(
        batch_size=32,
        lrs=[lr],
        losses=[1.0],
        smoothed=[1.0],
        suggestions={"minimum": lr},
        notes={},
        chosen_lr=lr,
        method="minimum",
        steps=1,
        stop_reason="end",
        seconds=0.1,
    )
    rows = [TrialResult(batch_size=32, patience=p, lr=lr, lr_method="minimum") for p in (2, 3)]
    publish_trial(cfg.trial, 32, target=export_target(cfg), sweep=sweep, rows=rows, fresh=cfg.fresh)


def test_fresh_retrains_and_is_never_itself_reused(tmp_path) -> None:
    """A --fresh parent starts every child although a result is published under the
    same key (before, ``fresh`` was part of the key: a second fresh run found the
    first fresh run's result and took it); the fresh child replaces it."""
    plain, fresh = config(tmp_path), config(tmp_path, fresh=True)
    published(tmp_path, plain, lr=0.01)
    target = export_target(plain)  # the same folder for all of them
    assert reusable_result(plain.trial, 32, target=target, fresh=plain.fresh) is not None
    wider = plain.model_copy(update={"batch_sizes": (32, 128)})
    assert reusable_result(wider.trial, 32, target=target, fresh=wider.fresh) is not None
    assert (
        reusable_result(fresh.trial, 32, target=target, fresh=fresh.fresh) is None
    )  # the first fresh run trains
    published(tmp_path, fresh, lr=0.02)  # ... and its child replaces the result
    assert read_published(plain.trial, 32, target=target)[0].chosen_lr == 0.02
    assert (
        reusable_result(fresh.trial, 32, target=target, fresh=fresh.fresh) is None
    )  # a second fresh run trains again
