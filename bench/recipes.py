"""A team's own fixed recipe against `nighttune tune` on the same model, side by side.

Two user projects, each its own model and data (bench/user_code.py, loaded by nighttune
as a user's builders), over seeds:

- ``cnn``: the user CNN of examples/your_model (`fashion_cnn`: registered ConvBlock
  layers with BatchNormalization and Dropout, SGD with Nesterov momentum at 0.05) on
  part of real Fashion-MNIST (``--images`` train, 5,000 validation, the official
  10,000 test). Recipe: the model as compiled, batch 128, 15 epochs, its best
  validation epoch kept (``--recipe-last-epoch``: its last).
- ``tabular``: an MLP over ggplot2's diamonds table (53,940 rows, the cut from 9
  features; Adam 1e-3). Recipe: batch 128, up to 100 epochs,
  ``EarlyStopping(patience=10, restore_best_weights=True)`` on validation accuracy.

Each side runs as the team would run it, in a fresh process (start-up included): the
recipe (this script with ``--recipe``), and ``nighttune tune --config`` with the
project's builders, its defaults for everything the YAML below does not set. Prints
each side's test accuracy (mean ± standard error over the seeds) and seconds, and
the tune's accuracy gain and time as a multiple of the recipe's, measured in one run.
With ``--peers TRIALS``, KerasTuner Hyperband and Optuna (TPE sampler, Hyperband
pruner, TRIALS trials) search learning rate x batch size for the same model under the
tune's epoch cap (bench/tune_vs_kt.py, bench/peers.py), in this process.

    .venv/bin/python bench/recipes.py [--tasks cnn,tabular] [--seeds 0,1,2] [--peers 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BENCH = Path(__file__).resolve().parent
EXAMPLES = BENCH.parent / "examples" / "your_model"
NIGHTTUNE = str(Path(sys.executable).with_name("nighttune"))


@dataclass(frozen=True)
class Project:
    """A user project: its builders, its fixed recipe, and what its tune config sets."""

    data: str
    model: str
    recipe_batch: int
    recipe_epochs: int
    recipe_patience: int | None  # None: no early stopping, the last epoch's weights
    tune: dict = field(default_factory=dict)  # the tune YAML's other keys
    data_kwargs: dict = field(default_factory=dict)
    model_kwargs: dict = field(default_factory=dict)


def projects(images: int, filters: int, *, last_epoch: bool) -> dict[str, Project]:
    """The two projects; the CNN's recipe keeps its best validation epoch (Keras's
    restore_best_weights over all 15), or with ``last_epoch`` its last (SGD at 0.05 with
    BatchNormalization: its last epoch scored 0.48 and 0.67 on two seeds of three)."""
    return {
        "cnn": Project(
            data="user_code:fashion_subset",
            model="your_models:fashion_cnn",
            data_kwargs={"train": images},
            model_kwargs={"filters": filters},
            recipe_batch=128,
            recipe_epochs=15,
            recipe_patience=None if last_epoch else 15,
            tune={"max_epochs": 15},
        ),
        "tabular": Project(
            data="user_code:diamonds",
            model="user_code:diamonds_mlp",
            recipe_batch=128,
            recipe_epochs=100,
            recipe_patience=10,
        ),
    }


def config(project: Project, *, seed: int, tmp: Path, exports: Path) -> dict:
    """The YAML a user writes to point nighttune at the project."""
    code_path = [str(BENCH), str(EXAMPLES)]
    return {
        "dataset": {"builder": project.data, "kwargs": project.data_kwargs, "code_path": code_path},
        "model": {"builder": project.model, "kwargs": project.model_kwargs, "code_path": code_path},
        "seed": seed,
        "cache_dir": str(tmp / "cache"),
        "export_to": str(exports),
        **project.tune,
    }


def run_tune(
    project: Project, *, seed: int, tmp: Path, flags: list[str]
) -> tuple[float, float, dict]:
    """(seconds, winner's test accuracy, manifest) of one `nighttune tune` process with
    ``flags`` after the config (``--fresh`` among them: nothing reused)."""
    exports = tmp / f"exports-{seed}{''.join(flags)}"  # no variant reads another's nights
    path = tmp / f"tune-{seed}.yaml"
    path.write_text(yaml.safe_dump(config(project, seed=seed, tmp=tmp, exports=exports)))
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect")}
    command = [NIGHTTUNE, "tune", "--config", str(path), "--fresh", *flags]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    run_id = json.loads((exports / "latest.json").read_text())["run_id"]
    manifest = json.loads((exports / run_id / "manifest.json").read_text())
    return seconds, float(manifest["winner"]["test_accuracy"]), manifest


def run_recipe(name: str, *, seed: int, options: list[str]) -> tuple[float, float]:
    """(seconds, test accuracy) of the recipe in a fresh process; ``options``: the
    flags that shape the projects (--images, --filters)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--recipe", name, "--seeds", str(seed), *options],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the {name} recipe failed:\n{done.stderr[-3000:]}")
    return seconds, float(json.loads(done.stdout.splitlines()[-1])["test_accuracy"])


def recipe(project: Project, *, seed: int) -> float:
    """Train the project's model by its fixed recipe; its test accuracy."""
    sys.path[:0] = [str(BENCH), str(EXAMPLES)]
    import importlib

    import keras

    keras.utils.set_random_seed(seed)
    data_module, data_function = project.data.split(":")
    splits = getattr(importlib.import_module(data_module), data_function)(**project.data_kwargs)
    x, y = splits["train"]
    model_module, model_function = project.model.split(":")
    build = getattr(importlib.import_module(model_module), model_function)
    model = build(x.shape[1:], len(splits["class_names"]), **project.model_kwargs)
    callbacks = []
    if project.recipe_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                "val_accuracy", patience=project.recipe_patience, restore_best_weights=True
            )
        )
    model.fit(
        x,
        y,
        batch_size=project.recipe_batch,
        epochs=project.recipe_epochs,
        validation_data=splits["validation"],
        callbacks=callbacks,
        verbose=0,
    )
    scores = model.evaluate(*splits["test"], batch_size=1024, verbose=0, return_dict=True)
    return float(scores["accuracy"])


def peer_searches(
    project: Project, *, seeds: list[int], tmp: Path, trials: int
) -> dict[str, list[tuple[float, float]]]:
    """KerasTuner Hyperband and Optuna (TPE + Hyperband pruner) over learning rate x
    batch size on the project's model and data (its compiled optimizer at each drawn
    rate), the tune's epoch cap: each seed's (seconds, test accuracy). In this process,
    from nighttune's cache of the project's data."""
    sys.path[:0] = [str(BENCH)]
    import keras
    from peers import optuna_search
    from tune_vs_kt import kt_search

    from nighttune.tasks.core.code import load_builder
    from nighttune.tasks.core.config import DatasetSpec, TuneConfig
    from nighttune.tasks.data.datasets import load_dataset

    code_path = (str(BENCH), str(EXAMPLES))
    spec = DatasetSpec(builder=project.data, kwargs=project.data_kwargs, code_path=code_path)
    cached = load_dataset(spec, tmp / "cache")
    build_model = load_builder(project.model, code_path)

    def build(lr: float, seed: int) -> keras.Model:
        keras.utils.set_random_seed(seed)
        model = build_model(cached.input_shape, len(cached.class_names), **project.model_kwargs)
        model.optimizer.learning_rate = lr
        return model

    epochs = project.tune.get("max_epochs", TuneConfig().max_epochs)
    found: dict[str, list[tuple[float, float]]] = {"Hyperband": [], "Optuna": []}
    for seed in seeds:
        band = kt_search(
            cached, epochs=epochs, seed=seed, folder=str(tmp / "kt"), kind="hyperband", build=build
        )
        study = optuna_search(cached, epochs=epochs, seed=seed, trials=trials, build=build)
        found["Hyperband"].append((band[0], band[2]))
        found["Optuna"].append((study[0], study[2]))
        print(
            f"seed {seed}: KerasTuner Hyperband {band[2]:.4f} in {band[0]:.0f} s; "
            f"Optuna {study[2]:.4f} in {study[0]:.0f} s",
            flush=True,
        )
        keras.backend.clear_session()
    return found


def mean_and_error(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f}"
    error = statistics.stdev(values) / len(values) ** 0.5
    return f"{statistics.mean(values):.4f} ± {error:.4f}"


def trained(manifest: dict) -> str:
    """The winner's batch size, LR and best epoch, each fit's epochs, each stage's time."""
    winner = manifest["winner"]
    fits: dict[int, str] = {}  # batch size -> epochs its one fit ran (every patience's cut)
    for row in manifest["trials"]:
        if row["epochs_run"]:
            fits[row["batch_size"]] = f"{row['epochs_run']} ep"
        else:  # stopped before any patience did (the hurdle, a time budget)
            fits.setdefault(row["batch_size"], (row["error"] or row["status"]).split(",")[0])
    stages = ", ".join(f"{name} {took:.0f} s" for name, took in manifest["timings"].items())
    return (
        f"winner b{winner['batch_size']} p{winner['patience']} lr {winner['lr']:.2g}, "
        f"best epoch {winner['best_epoch']}; fits "
        + ", ".join(f"b{batch} {fit}" for batch, fit in sorted(fits.items()))
        + f"; {stages}"
    )


def compare(
    name: str,
    project: Project,
    *,
    seeds: list[int],
    options: list[str],
    variants: list[str],
    peers: int,
    tune: bool = True,
) -> list[tuple[str, str, str]]:
    """Recipe and tune (and each of ``variants``: more tune flags; ``tune`` False: the
    recipe alone) per seed, then (``peers`` > 0) the peers with ``peers`` Optuna
    trials; prints the table, returns the bench row of the default tune."""
    results: dict[str, list[tuple[float, float]]] = {"recipe": []}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for seed in seeds:
            recipe_seconds, recipe_test = run_recipe(name, seed=seed, options=options)
            results["recipe"].append((recipe_seconds, recipe_test))
            print(
                f"{name} seed {seed}: recipe {recipe_test:.4f} in {recipe_seconds:.0f} s",
                flush=True,
            )
            for variant in ["", *variants] if tune else []:
                flags = variant.split()
                seconds, test, manifest = run_tune(project, seed=seed, tmp=tmp, flags=flags)
                side = f"tune {variant}".strip()
                results.setdefault(side, []).append((seconds, test))
                print(
                    f"{name} seed {seed}: {side} {test:.4f} in {seconds:.0f} s "
                    f"({trained(manifest)})",
                    flush=True,
                )
        if peers:
            results |= peer_searches(project, seeds=seeds, tmp=tmp, trials=peers)
    seconds = {side: statistics.mean(s for s, _ in runs) for side, runs in results.items()}
    tests = {side: [test for _, test in runs] for side, runs in results.items()}
    print(f"{name:<22} {'test accuracy':>18} {'seconds':>8}")
    for side in results:
        print(f"{side:<22} {mean_and_error(tests[side]):>18} {seconds[side]:>8.0f}")
    if not tune:
        return []
    gain = 100 * (statistics.mean(tests["tune"]) - statistics.mean(tests["recipe"]))
    ratio = seconds["tune"] / seconds["recipe"]
    goal = "+0.5 pt in <= 3x" if name == "cnn" else "+0.3 pt in <= 1x"
    return [
        (
            f"default tune vs the user's own recipe: {name} (seeds {','.join(map(str, seeds))})",
            f"{gain:+.2f} pt in {ratio:.2f}x",
            goal,
        )
    ]


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="cnn,tabular", help="cnn, tabular or both")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--images", type=int, default=10_000, help="cnn: train images")
    parser.add_argument("--filters", type=int, default=16, help="cnn: the model's filters")
    parser.add_argument(
        "--peers",
        type=int,
        default=0,
        metavar="TRIALS",
        help="also KerasTuner Hyperband and Optuna with TRIALS trials (0: not run)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also the tune with these flags, side by side (repeatable): --variant=--no-hurdle",
    )
    parser.add_argument(
        "--recipe-last-epoch",
        action="store_true",
        help="cnn: the recipe keeps its last epoch, not its best on validation",
    )
    parser.add_argument("--no-tune", action="store_true", help="the recipes alone")
    parser.add_argument("--recipe", help=argparse.SUPPRESS)  # the recipe's own process
    args = parser.parse_args(argv)
    known = projects(args.images, args.filters, last_epoch=args.recipe_last_epoch)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.recipe:
        print(json.dumps({"test_accuracy": recipe(known[args.recipe], seed=seeds[0])}))
        return []
    names = args.tasks.split(",")
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"--tasks: no {', '.join(unknown)}; choose from {', '.join(known)}")
    options = ["--images", str(args.images), "--filters", str(args.filters)]
    options += ["--recipe-last-epoch"] if args.recipe_last_epoch else []
    rows = []
    for name in names:
        rows += compare(
            name,
            known[name],
            seeds=seeds,
            options=options,
            variants=args.variant,
            peers=args.peers,
            tune=not args.no_tune,
        )
    return rows


if __name__ == "__main__":
    main()
