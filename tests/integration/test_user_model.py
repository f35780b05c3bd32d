"""The user's own model: a builder named module:function, its compile kept, the LR driven."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from nighttune.tasks.core.config import ModelSpec
from nighttune.tasks.core.config_file import load_tune_config
from nighttune.tasks.core.errors import BuilderError, ConfigError
from nighttune.tasks.tuning.models import build_model
from tests.support.harness import ROOT, nighttune_cmd

PROJECT = ROOT / "tests" / "support" / "user_project"


def spec(function: str = "build", **kwargs) -> ModelSpec:
    return ModelSpec(builder=f"my_models:{function}", kwargs=kwargs, code_path=(str(PROJECT),))


def test_a_compiled_model_keeps_its_optimizer_and_takes_the_lr() -> None:
    model = build_model(spec(width=8), (8, 8, 1), 10, learning_rate=0.003, jit_compile=True)
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "SGD"
    assert float(optimizer.learning_rate) == pytest.approx(0.003)
    assert (optimizer.momentum, optimizer.clipnorm) == (0.9, 1.0)
    assert model.get_layer(index=-1).units == 10 and model.layers[3].units == 8  # kwargs


def test_an_uncompiled_model_is_compiled_as_the_builtins() -> None:
    model = build_model(spec("build_uncompiled"), (8, 8, 1), 10, learning_rate=0.01)
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.loss.get_config()["from_logits"] is False  # it ends in a softmax
    assert "accuracy" in model.evaluate(np.zeros((2, 8, 8, 1)), np.zeros(2), return_dict=True)


@pytest.mark.parametrize(
    ("builder", "needle"),
    [
        ("my_models:missing", "has no function 'missing'"),
        ("no_such_module:build", "no module 'no_such_module' in "),
        ("my_models:build_raises", "raised ValueError: width must be even"),
        ("my_models:build_not_a_model", "returned str, not a keras.Model"),
        ("my_models:build_with_schedule", "learning rate from a schedule"),
    ],
)
def test_builder_mistakes_are_one_line(builder: str, needle: str) -> None:
    model_spec = ModelSpec(builder=builder, code_path=(str(PROJECT),))
    with pytest.raises(BuilderError) as raised:
        build_model(model_spec, (8, 8, 1), 10)
    assert needle in str(raised.value) and "\n" not in str(raised.value)


def test_a_builder_without_a_colon_is_refused_by_the_config() -> None:
    with pytest.raises(ConfigError, match=r"model.builder: must be module:function"):
        load_tune_config(None, {"model.builder": "my_models.build"})


def test_the_config_files_folder_and_code_dir_come_first(tmp_path) -> None:
    path = tmp_path / "conf" / "tune.yaml"
    path.parent.mkdir()
    path.write_text("code_dir: ../src\nmodel: {builder: 'my_models:build'}\n")
    config = load_tune_config(str(path), {})
    assert config.model.code_path == (str(tmp_path / "conf" / ".." / "src"), str(path.parent))


@pytest.mark.parametrize(
    "optimizer",
    [
        None,  # the builder's own: SGD, momentum 0.9, clipnorm
        lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.01),
        lambda: keras.optimizers.RMSprop(1e-3, momentum=0.5, centered=True),
    ],
)
def test_the_range_test_restores_optimizer_state_exactly(digits, optimizer) -> None:
    from nighttune.tasks.tuning.lr_range import run_range_test

    model = build_model(spec(), digits.input_shape, 10, learning_rate=0.01)
    if optimizer is not None:  # as if the builder had compiled with it
        model.compile(optimizer=optimizer(), loss=model.loss, metrics=["accuracy"])
    kind = type(model.optimizer).__name__
    batches = digits.batches("train", 32)
    model.fit(batches.take(3), epochs=1, verbose=0, shuffle=False)  # momentum buffers: not 0
    before = [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]
    lrs, losses, _ = run_range_test(model, batches, start_lr=1e-4, end_lr=1.0, num_steps=15)
    after = [v.numpy() for v in [*model.variables, *model.optimizer.variables]]
    assert len(lrs) >= 5 and all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert type(model.optimizer).__name__ == kind


@pytest.mark.slow
def test_a_user_model_tunes_exports_and_predicts(prefect_harness, tmp_path) -> None:
    """The flow on digits with the user's model (custom layer, BatchNorm, SGD momentum):
    exported with the builder's name and code hash; predict imports the module only from
    --code-dir, and without it says which module is missing."""
    from nighttune.flows.tune import tune
    from tests.support.images import class_folder

    config = load_tune_config(
        None,
        {
            "model.builder": "my_models:build",
            "model.kwargs": {"width": 16},
            "model.code_path": [str(PROJECT)],
            "batch_sizes": [32],
            "patiences": [2],
            "max_epochs": 3,
            "lr_range.steps": 15,
            "export_to": str(tmp_path / "exports"),
            "cache_dir": str(tmp_path / "cache"),
        },
    )
    result = tune(config)
    run = Path(result.export.path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"]["builder"] == "my_models:build"
    assert manifest["model"]["kwargs"] == {"width": 16}
    assert manifest["model"]["code"]["file"] == "my_models.py"
    assert len(manifest["model"]["code"]["sha256"]) == 64
    assert "code_path" not in manifest["model"]
    assert result.winner.metrics["val_accuracy"] == result.winner.val_accuracy

    images = class_folder(tmp_path / "images", classes=("a", "b"), per_class=2)
    out = tmp_path / "p.csv"
    argv = ["predict", "--model", str(run), "--images", str(images), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    done = subprocess.run(
        nighttune_cmd(*argv, "--code-dir", str(PROJECT)),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 1 + 4
    refused = subprocess.run(
        nighttune_cmd(*argv), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert refused.returncode == 2, refused.stderr
    assert "no module 'my_models' in" in refused.stderr and "--code-dir" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_model_with_its_own_train_step_runs_it_in_the_fused_loop(digits) -> None:
    """The epoch loop calls the model's own per-batch train_step: every batch counts."""
    from nighttune.tasks.core.config import TuneConfig
    from nighttune.tasks.tuning.context import trial_context
    from nighttune.tasks.tuning.epoch_loop import epoch_inputs, examples_per_epoch
    from nighttune.tasks.tuning.loops import trial_model

    model = trial_model(
        digits, trial_context(TuneConfig(model=spec("build_counting")), digits), 64, lr=0.01
    )
    data = epoch_inputs(*digits.stored_arrays("train"), seed=0)
    history = model.fit(data, steps_per_epoch=1, epochs=2, verbose=0, shuffle=False)
    batches = examples_per_epoch(digits.num_examples["train"], 64) // 64
    assert int(model.steps_run.numpy()) == 2 * batches
    assert history.history["accuracy"][-1] > 0.3


def test_a_model_xla_cannot_compile_trains_with_plain_fit(digits, tmp_path, caplog) -> None:
    """The fused loop (XLA) refuses a tf.numpy_function: the trial says so in one line and
    trains with plain fit; asked for the fused loop only, it fails."""
    import tensorflow as tf

    from nighttune.tasks.core.config import TuneConfig
    from nighttune.tasks.tuning.context import trial_context
    from nighttune.tasks.tuning.training import train_trial

    config = TuneConfig(
        model=spec("build_numpy_op"),
        patiences=(1, 2),
        max_epochs=4,
        xla="on",  # auto leaves it off on the CPU for a user model
        cache_dir=str(tmp_path),
    )
    with caplog.at_level("INFO", logger="nighttune"):
        rows = train_trial(digits, trial_context(config, digits), 64, lr=0.05, lr_method="minimum")
    assert [(r.status, r.training_loop) for r in rows] == [("ok", "fit"), ("ok", "fit")]
    assert rows[0].val_accuracy > 0.5
    fallback = [line for line in caplog.messages if "plain Keras fit instead" in line]
    assert fallback == [
        "trial b64: the fused epoch loop cannot run this model (XLA cannot compile its "
        "PyFuncStateless op); training with plain Keras fit instead"
    ]
    with pytest.raises(tf.errors.InvalidArgumentError, match="PyFuncStateless"):
        train_trial(
            digits,
            trial_context(config.model_copy(update={"training_loop": "fused"}), digits),
            64,
            lr=0.05,
            lr_method="x",
        )


def test_a_model_computing_its_own_loss_sweeps_and_trains(digits, tmp_path) -> None:
    """Compiled with an optimizer only; its train_step computes the loss: the LR range
    test records that step's per-batch loss, and the trial monitors its val_accuracy."""
    from nighttune.tasks.core.config import LRRangeSpec, TuneConfig
    from nighttune.tasks.tuning.context import trial_context
    from nighttune.tasks.tuning.lr_range import lr_range_test
    from nighttune.tasks.tuning.training import train_trial

    # 50 steps, the fewest a default sweep takes: at 30 this SGD model's loss falls 3%,
    # a curve refused as flat (`lr_suggest.MIN_FALL`)
    sweep = lr_range_test(digits, spec("build_own_loss"), 64, spec=LRRangeSpec(steps=50))
    assert sweep.stop_reason == "completed" and sweep.method != "fallback"
    assert 2.0 < sweep.losses[0] < 2.6  # ~ln(10): this batch's cross-entropy, untrained
    config = TuneConfig(
        model=spec("build_own_loss"), patiences=(2,), max_epochs=4, cache_dir=str(tmp_path)
    )
    (row,) = train_trial(
        digits, trial_context(config, digits), 64, lr=sweep.chosen_lr, lr_method=sweep.method
    )
    assert row.status == "ok" and row.training_loop == "fused" and row.val_accuracy > 0.8


def test_a_flat_sweep_falls_back_to_the_rate_the_model_was_compiled_with(digits) -> None:
    """30 steps of this SGD model's sweep fall 3% (flat: no rule reads an LR off it);
    its trials then train at the user's own compiled rate, 0.05, not Adam's 1e-3 (at
    which the example's SGD CNN stayed at chance)."""
    from nighttune.tasks.core.config import LRRangeSpec
    from nighttune.tasks.tuning.lr_range import lr_range_test

    sweep = lr_range_test(digits, spec("build_own_loss"), 64, spec=LRRangeSpec(steps=30))
    assert sweep.method == "fallback"
    assert all("flat" in note or "too short" in note for note in sweep.notes.values())
    assert sweep.chosen_lr == pytest.approx(0.05)
