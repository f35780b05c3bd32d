"""The `nighttune` command line.

Exit status: 0 done; 2 the user's input is wrong (one line on stderr says what and
how to fix it, never a traceback); 1 anything else. Heavy imports (TensorFlow,
Prefect) happen inside commands so that ``--help`` answers at once.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

# typer >= 0.29 vendors click; its exceptions live here, not in the `click` package.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

# TensorFlow's import-time chatter is not for our users; set before it loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# (after the environment is set)
from tasks.core.errors import TrialFailed, UserError, clean_tf_message, first_line  # noqa: E402

app = typer.Typer(
    name="nighttune",
    help="Tune Keras training every night: LR range tests, batch size x patience grids, "
    "exports and reports, orchestrated by Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DATASET_HELP = (
    "TFDS catalog name (mnist, fashion_mnist, cifar10), 'digits' (bundled, offline; the "
    "default), or a folder with one subfolder of images per class."
)
DatasetOpt = Annotated[str, typer.Option("--dataset", help=DATASET_HELP)]
DataDirOpt = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        help="Where TFDS finds (or downloads) catalog datasets. Default: $TFDS_DATA_DIR "
        "or ~/tensorflow_datasets.",
    ),
]
CacheDirOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        help="Preprocessed-dataset cache. Default: $NIGHTTUNE_CACHE_DIR or ~/.cache/nighttune.",
    ),
]
ImageSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--image-size",
        metavar="H,W",
        help="Resize every image to HEIGHT,WIDTH. Default: the dataset's own size.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for splits (and, later, training).")]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", help="Show tracebacks of failures (a one-line error is the default)."
    ),
]
_VERBOSE = False


def _set_verbose(verbose: bool) -> None:
    """Remember ``--verbose`` for `main`, and show or hide tracebacks in Prefect's logs."""
    global _VERBOSE
    _VERBOSE = verbose


def _dataset_spec(dataset: str, data_dir: str | None, image_size: str | None, seed: int):
    from tasks.core.config import DatasetSpec, parse

    return parse(
        DatasetSpec,
        {
            "name": dataset,
            "data_dir": data_dir,
            "image_size": _image_size(image_size),
            "seed": seed,
        },
        where="dataset.",
    )


def _cache_and_describe(spec, cache_dir: str | None) -> None:
    from tasks.data.datasets import load_dataset

    cached = load_dataset(spec, cache_dir)
    height, width, channels = cached.input_shape
    state = "cache hit" if cached.cache_hit else "built"
    print(f"dataset     {spec.name}  ({state}: {cached.path})")
    print(f"classes     {len(cached.class_names)}: {' '.join(cached.class_names)}")
    print(f"input       {height}x{width}x{channels} float32 in [0, 1]")
    for split, count in cached.num_examples.items():
        print(f"{split:<11} {count:>7} examples")


def _int_list(flag: str, text: str | None) -> list[int] | None:
    from tasks.core.errors import ConfigError

    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"{flag} wants comma-separated integers such as 32,64,128 (got {text!r})"
        ) from None


def _image_size(text: str | None) -> list[int] | None:
    from tasks.core.errors import ConfigError

    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--image-size wants HEIGHT,WIDTH such as 28,28 (got {text!r})") from None
    return [height, width]


@app.command()
def tune(
    config: Annotated[
        str | None,
        typer.Option("--config", help="YAML file of TuneConfig keys; flags override it."),
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help=DATASET_HELP)] = None,
    data_dir: DataDirOpt = None,
    cache_dir: CacheDirOpt = None,
    image_size: ImageSizeOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="mlp (default) or cnn.")] = None,
    batch_sizes: Annotated[
        str | None, typer.Option("--batch-sizes", metavar="B,B,...", help="Default: 32,64,128.")
    ] = None,
    patiences: Annotated[
        str | None, typer.Option("--patiences", metavar="P,P,...", help="Default: 3,6,10.")
    ] = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="Most epochs per fit. Default: 30.")
    ] = None,
    monitor: Annotated[
        str | None,
        typer.Option(
            "--monitor", help="Metric for early stopping and selection. Default: val_accuracy."
        ),
    ] = None,
    monitor_mode: Annotated[
        str | None,
        typer.Option(
            "--monitor-mode",
            help="max or min: which way --monitor improves. Default: auto, read off the "
            "compiled Keras metric.",
        ),
    ] = None,
    min_delta: Annotated[
        float | None, typer.Option("--min-delta", help="Smallest improvement. Default: 0.")
    ] = None,
    lr_method: Annotated[
        str | None,
        typer.Option("--lr-method", help="minimum (default), steepest or valley."),
    ] = None,
    start_lr: Annotated[float | None, typer.Option("--start-lr", help="Default: 1e-6.")] = None,
    end_lr: Annotated[float | None, typer.Option("--end-lr", help="Default: 1.")] = None,
    lr_steps: Annotated[
        int | None, typer.Option("--lr-steps", help="Sweep length. Default: an epoch, 10..200.")
    ] = None,
    export_to: Annotated[
        str | None, typer.Option("--export-to", help="Export folder. Default: ./exports.")
    ] = None,
    s3_endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--s3-endpoint-url",
            help="S3-compatible endpoint (MinIO). Default: $AWS_ENDPOINT_URL or AWS.",
        ),
    ] = None,
    tensorboard: Annotated[
        bool | None,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="TensorBoard logs of every trial "
            "in the export. Default: on for local targets, off for S3.",
        ),
    ] = None,
    dispatch: Annotated[
        str | None,
        typer.Option(
            "--dispatch",
            help="local (default): train here; deployments: one "
            "train-trial run per batch size on the gpu pool's workers.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Default: 0.")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Find the LR per batch size, train the batch size x patience grid, export the best."""
    from tasks.core.config import load_tune_config

    _set_verbose(verbose)

    overrides = {
        "dataset.name": dataset,
        "dataset.data_dir": data_dir,
        "dataset.image_size": _image_size(image_size),
        "dataset.seed": seed,
        "cache_dir": cache_dir,
        "model.kind": model,
        "batch_sizes": _int_list("--batch-sizes", batch_sizes),
        "patiences": _int_list("--patiences", patiences),
        "max_epochs": max_epochs,
        "monitor": monitor,
        "monitor_mode": monitor_mode,
        "min_delta": min_delta,
        "lr_range.method": lr_method,
        "lr_range.start_lr": start_lr,
        "lr_range.end_lr": end_lr,
        "lr_range.steps": lr_steps,
        "export_to": export_to,
        "dispatch": dispatch,
        "s3_endpoint_url": s3_endpoint_url,
        "tensorboard": tensorboard,
        "seed": seed,
    }
    cfg = load_tune_config(config, overrides)

    from tasks.preflight import preflight

    preflight(cfg)  # before the temporary server starts: a mistake is one line at once

    from flows.console import hide_tracebacks
    from flows.server import local_flow_settings
    from flows.tune import tune as tune_flow
    from tasks.reporting.tables import trials_frame

    if not _VERBOSE:
        hide_tracebacks()
    with local_flow_settings():
        result = tune_flow(cfg)
    frame = trials_frame(result.rows, result.winner)
    shown = [
        "batch_size",
        "patience",
        "lr",
        "epochs_run",
        "best_epoch",
        "val_accuracy",
        "test_accuracy",
        "train_seconds",
        "status",
        "winner",
    ]
    print()
    print(frame[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    w = result.winner
    print()
    print(
        f"winner      batch size {w.batch_size}, patience {w.patience}, lr {w.lr:.3g} "
        f"({w.lr_method}): val accuracy {w.val_accuracy:.4f}, test accuracy "
        f"{w.test_accuracy:.4f}"
    )
    exported = result.export
    print(f"exported    {exported.path if exported.uri.startswith('file:') else exported.uri}")
    print(f"latest      {exported.latest}")


@app.command()
def cache(
    dataset: DatasetOpt = "digits",
    data_dir: DataDirOpt = None,
    cache_dir: CacheDirOpt = None,
    image_size: ImageSizeOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Prepare and cache a dataset, then print its splits.

    Run it where there is internet to download a TFDS catalog dataset into
    --data-dir; copy that folder to offline machines.
    """
    _cache_and_describe(_dataset_spec(dataset, data_dir, image_size, seed), cache_dir)


@app.command("lr-find")
def lr_find(
    out: Annotated[str, typer.Option("--out", help="Folder for lr_sweep_b<batch>.json and .png.")],
    dataset: DatasetOpt = "digits",
    data_dir: DataDirOpt = None,
    cache_dir: CacheDirOpt = None,
    image_size: ImageSizeOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size of the sweep.")] = 64,
    start_lr: Annotated[float, typer.Option("--start-lr", help="First LR of the ramp.")] = 1e-6,
    end_lr: Annotated[float, typer.Option("--end-lr", help="Last LR of the ramp.")] = 1.0,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="Batches in the ramp. Default: one epoch, within 10..200."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="Suggestion to choose: minimum, steepest or valley.")
    ] = "minimum",
    model: Annotated[str, typer.Option("--model", help="Model to sweep: mlp or cnn.")] = "mlp",
    seed: SeedOpt = 0,
) -> None:
    """Run one learning-rate range test and print every method's suggestion."""
    from tasks.core.config import LRRangeSpec, ModelSpec, parse
    from tasks.core.errors import ConfigError

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer (got {batch_size})")
    spec = parse(
        LRRangeSpec,
        {"start_lr": start_lr, "end_lr": end_lr, "steps": steps, "method": method},
        where="lr_range.",
    )
    model_spec = parse(ModelSpec, {"kind": model}, where="model.")
    data_spec = _dataset_spec(dataset, data_dir, image_size, seed)

    from tasks.data.datasets import load_dataset
    from tasks.tuning.lr_range import lr_range_test, save_sweep

    sweep = lr_range_test(load_dataset(data_spec, cache_dir), model_spec, batch_size, spec, seed)
    json_path, png_path = save_sweep(sweep, out)
    print(f"lr range test, batch size {batch_size}: {sweep.steps} steps, {sweep.stop_reason}")
    for name, lr in sweep.suggestions.items():
        shown = f"{lr:.3e}" if lr is not None else "none"
        mark = "  <- chosen" if name == sweep.method else ""
        print(f"  {name:<9} {shown:>10}  {sweep.notes[name]}{mark}")
    if sweep.method == "fallback":
        print(f"  no method found a descent; chosen fallback {sweep.chosen_lr:.3e}")
    print(f"chosen lr   {sweep.chosen_lr:.3e}")
    print(f"wrote       {json_path}")
    print(f"            {png_path}")


@app.command()
def predict(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="A run: ./exports/latest, ./exports/<run-id>, "
            "s3://bucket/prefix/latest or s3://bucket/prefix/<run-id>.",
        ),
    ],
    images: Annotated[
        list[str],
        typer.Option(
            "--images", help="Folder of images (searched recursively); repeat for more folders."
        ),
    ],
    out: Annotated[str, typer.Option("--out", help="CSV to write.")] = "predictions.csv",
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help="Images per batch. Default: as many as fit 16 MiB of input, 32 to 1024.",
        ),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", help="Also write the next k-1 labels and confidences.")
    ] = 1,
    cache_dir: CacheDirOpt = None,
    s3_endpoint_url: Annotated[
        str | None, typer.Option("--s3-endpoint-url", help="S3-compatible endpoint (MinIO).")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Predict every image under the folders with an exported run; one CSV row per file."""
    from tasks.inference.predict import predict_to_csv

    _set_verbose(verbose)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="img", file=sys.stderr, disable=None)
        bar.update(done - bar.n)

    summary = predict_to_csv(
        model, images, out, batch_size, top_k, cache_dir, s3_endpoint_url, progress
    )
    if bar is not None:
        bar.close()
    print(f"files       {summary.files}")
    print(f"predicted   {summary.predicted}")
    print(f"errors      {summary.errors}")
    if summary.renamed:
        print(
            f"note        {summary.renamed} file name(s) not valid UTF-8: written "
            "with \\xNN escapes"
        )
    if summary.outside:
        print(
            f"note        {summary.outside} symlinked folder(s) not followed: they lead "
            "outside the --images folders"
        )
    print(f"wrote       {summary.out}  ({summary.images_per_s:.0f} images/s)")


@app.command()
def report(
    history: Annotated[
        str, typer.Option("--history", help="Export target: a folder or s3://bucket/prefix.")
    ],
    out: Annotated[str, typer.Option("--out", help="Folder for history.csv and .png.")] = ".",
    s3_endpoint_url: Annotated[
        str | None, typer.Option("--s3-endpoint-url", help="S3-compatible endpoint (MinIO).")
    ] = None,
) -> None:
    """One row per run under an export target (winner, accuracy, duration) and a trend plot."""
    from tasks.runs.history import run_history, write_history

    frame = run_history(history, s3_endpoint_url)  # read every manifest once
    csv_path, png_path = write_history(history, out, s3_endpoint_url, frame)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote       {csv_path}")
    print(f"            {png_path}")


@app.command()
def server(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for other machines.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the API and UI.")] = 4200,
) -> None:
    """Start the Prefect server for nightly runs (`prefect server start`, tuned).

    Its task-run recorder writes in batches: on Prefect's default SQLite
    database that saves a 2 s client retry on many task starts (see
    flows/server.py). Variables already set in the environment win. The
    database: SQLite under PREFECT_HOME, or the one named by
    PREFECT_SERVER_DATABASE_CONNECTION_URL.
    """
    from flows.server import unset_server_settings

    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535 (got {port})")
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", host, "--port", str(port)]
    sys.stdout.flush()
    os.execve(command[0], command, {**os.environ, **unset_server_settings()})


def _fail(message: str, code: int) -> int:
    print(f"nighttune: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nighttune`` console script; returns the exit status."""
    from flows import interrupts
    from flows.console import console_logging, environmental

    console_logging()
    interrupts.install()
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=sys.argv[1:] if argv is None else argv,
            prog_name="nighttune",
            standalone_mode=False,
        )
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "nighttune --help")
        return 0
    except UsageError as exc:
        where = f"nighttune {exc.ctx.info_name} --help" if exc.ctx else "nighttune --help"
        where = where.replace("nighttune nighttune", "nighttune")
        return _fail(f"{exc.format_message()} (see `{where}`)", 2)
    except (typer.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        interrupts.say_once()
        return 130
    except UserError as exc:
        return _fail(str(exc), 2)
    except TrialFailed as exc:
        return _fail(str(exc), 1)
    except Exception as exc:
        if _VERBOSE or not environmental(exc):
            raise
        return _fail(f"{clean_tf_message(first_line(exc))} (--verbose shows where)", 1)
    except BaseException as exc:
        signum = interrupts.signal_of(exc)
        if signum is None:
            raise
        interrupts.say_once()
        return 128 + signum
    if result == 130:  # typer turns KeyboardInterrupt into Exit(130), returned here
        interrupts.say_once()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
