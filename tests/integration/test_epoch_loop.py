"""The fused epoch loop trains exactly as per-batch Keras steps over the same order; the
XLA flags it compiles under; how models are seeded."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from nighttune.tasks.core.config import ModelSpec
from nighttune.tasks.core.settings import XLA_CPU_FLAGS, use_xla_cpu_flags
from nighttune.tasks.tuning.epoch_loop import (
    batch_inputs,
    epoch_inputs,
    examples_per_epoch,
    fuse_epochs,
)
from nighttune.tasks.tuning.models import build_model
from tests.support.harness import ROOT

N, SHAPE = 203, (8, 8, 1)


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.random((N, *SHAPE), dtype=np.float32), rng.integers(0, 10, N)


def model(jit: bool = True) -> keras.Model:
    return build_model(
        ModelSpec(hidden_units=(16,)), SHAPE, 10, learning_rate=1e-2, seed=0, jit_compile=jit
    )


def permutations(x: np.ndarray, y: np.ndarray, seed: int, count: int) -> list[np.ndarray]:
    it = iter(epoch_inputs(x, y, seed))
    return [next(it)[2].numpy() for _ in range(count)]


def test_plain_fit_gets_the_fused_loops_batches_in_its_order() -> None:
    x, y = data()
    batch = 32
    per_epoch = examples_per_epoch(N, batch) // batch  # 6 full batches of 203
    got = list(batch_inputs(x, y, batch, seed=5).take(2 * per_epoch))
    for epoch, order in enumerate(permutations(x, y, seed=5, count=2)):
        for b in range(per_epoch):
            rows = order[b * batch : (b + 1) * batch]
            xb, yb = got[epoch * per_epoch + b]
            np.testing.assert_array_equal(xb.numpy(), x[rows])
            np.testing.assert_array_equal(yb.numpy(), y[rows])


def test_each_epoch_is_a_fresh_seeded_permutation() -> None:
    x, y = data()
    first = permutations(x, y, seed=5, count=3)
    for order in first:
        assert sorted(order.tolist()) == list(range(N))
    assert not np.array_equal(first[0], first[1])
    again = permutations(x, y, seed=5, count=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], permutations(x, y, seed=6, count=1)[0])


def test_one_epoch_equals_keras_steps_over_the_same_batches() -> None:
    # Without XLA: its CPU reductions may add in another order from run to run on a
    # loaded machine, and Adam turns the sign of a gradient ~1e-9 into a full step, so
    # the weights then differ by far more than rounding (seen once in a full suite).
    x, y = data()
    batch = 32
    fused = fuse_epochs(model(jit=False), batch)
    history = fused.fit(
        epoch_inputs(x, y, seed=1), steps_per_epoch=1, epochs=2, verbose=0, shuffle=False
    )

    plain = model(jit=False)
    losses = []
    for order in permutations(x, y, seed=1, count=2):
        rows = order[: N // batch * batch]  # full batches only: the leftover 11 wait
        step = plain.fit(x[rows], y[rows], batch_size=batch, shuffle=False, verbose=0)
        losses.append(step.history["loss"][0])

    assert int(fused.optimizer.iterations) == 2 * (N // batch)
    assert examples_per_epoch(N, batch) == N // batch * batch == 192
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-4)


def test_a_batch_larger_than_the_split_trains_on_all_of_it() -> None:
    x, y = data()
    fused = fuse_epochs(model(), 4096)
    before = [w.copy() for w in fused.get_weights()]
    fused.fit(epoch_inputs(x, y, seed=0), steps_per_epoch=1, epochs=3, verbose=0, shuffle=False)
    assert int(fused.optimizer.iterations) == 3
    assert examples_per_epoch(N, 4096) == N
    assert any(not np.array_equal(a, b) for a, b in zip(before, fused.get_weights(), strict=True))


def test_saved_model_loads_without_our_code(tmp_path) -> None:
    x, y = data()
    fused = fuse_epochs(model(), 32)
    fused.fit(epoch_inputs(x, y, seed=0), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    fused.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert "train_step" not in vars(loaded)  # the class's own per-batch step
    np.testing.assert_allclose(loaded.predict(x, verbose=0), fused.predict(x, verbose=0), atol=1e-6)
    # the loaded model trains per batch as usual: nothing of the epoch step was saved
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert tf.reduce_all(tf.math.is_finite(loaded.get_weights()[0]))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", " ".join(XLA_CPU_FLAGS)),
        ("--xla_dump_to=/tmp/x", " ".join(("--xla_dump_to=/tmp/x", *XLA_CPU_FLAGS))),
        (  # the environment's own setting of one of our flags wins
            "--xla_cpu_enable_concurrency_optimized_scheduler=true",
            "--xla_cpu_enable_concurrency_optimized_scheduler=true",
        ),
    ],
)
def test_our_xla_flags_join_the_environments(monkeypatch, given: str, expected: str) -> None:
    monkeypatch.setenv("XLA_FLAGS", given)
    use_xla_cpu_flags()
    assert os.environ["XLA_FLAGS"] == expected


def test_this_xla_accepts_our_flags() -> None:
    """XLA aborts the process on a flag it does not know: a compile under ours must run."""
    code = (
        "from tasks.core.settings import use_xla_cpu_flags; use_xla_cpu_flags()\n"
        "import tensorflow as tf\n"
        "f = tf.function(lambda x: tf.reduce_sum(x @ x), jit_compile=True)\n"
        "print(float(f(tf.ones((4, 4)))))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "64.0"


def test_build_model_is_seeded_and_leaves_python_random_as_it_was() -> None:
    """Same seed, same weights; another seed, other weights. Python's global `random`
    comes back as it was: Prefect picks the temporary server's port from it, and seeded
    alike in every process, two runs at once picked one port (tasks/tuning/models.py)."""
    import random

    random.seed()  # fresh entropy, as in a new process
    before = random.getstate()
    spec = ModelSpec(hidden_units=(16,))
    a, b, c = (build_model(spec, SHAPE, 10, seed=s) for s in (3, 3, 4))
    assert random.getstate() == before
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_build_model_weights_do_not_depend_on_other_threads_drawing_from_random() -> None:
    """In a flow run, Prefect's threads draw from Python's global `random` while a trial
    builds its model; Keras drew its initializers' seeds from the same generator, and
    the same seed gave other weights (CI, 1 run in many). A thread drawing without
    pause makes it happen every time."""
    import random
    import threading

    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()

    spec = ModelSpec(hidden_units=(16, 16, 16))
    alone = build_model(spec, SHAPE, 10, seed=5).get_weights()
    drawer = threading.Thread(target=draw, daemon=True)
    drawer.start()
    try:
        crowded = [build_model(spec, SHAPE, 10, seed=5).get_weights() for _ in range(3)]
    finally:
        stop.set()
        drawer.join()
    for weights in crowded:
        assert all(np.array_equal(u, v) for u, v in zip(alone, weights, strict=True))


def test_xla_is_on_for_the_builtin_mlp_and_off_on_the_cpu_for_the_rest() -> None:
    from nighttune.tasks.tuning.context import use_xla

    user = ModelSpec(builder="my_models:build", code_path=("tests/support/user_project",))
    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert use_xla(ModelSpec()) == (True, "the built-in MLP")
    assert use_xla(ModelSpec(kind="cnn"))[0] is gpu
    assert use_xla(user)[0] is gpu
    assert use_xla(user, "on") == (True, "xla: on")
    assert use_xla(ModelSpec(), "off") == (False, "xla: off")
