"""The `nighttune` command line.

Exit status: 0 done; 2 the user's input is wrong (one line on stderr says what and
how to fix it, never a traceback); 1 anything else. Heavy imports (TensorFlow,
Prefect) happen inside commands so that ``--help`` answers at once.
"""

from __future__ import annotations

import time

STARTED_AT = time.time()  # the command's start-up, counted in the run's timings

import contextlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import typer  # noqa: E402

# typer >= 0.29 vendors click; its exceptions live here, not in the `click` package.
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # noqa: E402

# Before TensorFlow and Prefect load, unless the user chose: TF's C++ INFO lines (flows.quiet
# filters the rest) and Prefect's telemetry (offline, its server logs ERRORs sending it).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Prefect makes its home folder without its parents: a PREFECT_HOME under a folder that
# does not exist yet left a server that would not start (15 s, then an uvicorn line).
if os.environ.get("PREFECT_HOME", "").strip():
    with contextlib.suppress(OSError):  # unwritable: Prefect's own warning says so
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)

# (after the environment is set)
from nighttune.flows.flags import DATA_FLAGS, LR_FIND_FLAGS, TUNE_FLAGS, Overrides, with_flags  # noqa: E402
from nighttune.flows.options import (  # noqa: E402
    CacheDirOpt,
    CodeDirOpt,
    ConfigOpt,
    CsvOutOpt,
    DataDirOpt,
    HistoryOpt,
    HistoryOutOpt,
    HostOpt,
    ImagesOpt,
    InputsOpt,
    PortOpt,
    PredictBatchOpt,
    PrepareNameArg,
    RunOpt,
    S3EndpointOpt,
    SourceOpt,
    SweepBatchOpt,
    SweepOutOpt,
    TopKOpt,
    TrustedNetworkOpt,
    UiApiUrlOpt,
    VerboseOpt,
)
from nighttune.tasks.core.errors import TrialFailed, UserError, clean_tf_message, first_line  # noqa: E402

app = typer.Typer(
    name="nighttune",
    help="Tune Keras training every night: LR range tests, batch size x patience grids, "
    "exports and reports, orchestrated by Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: full-width descriptions, no boxes
)

_VERBOSE = False


def _set_verbose(verbose: bool) -> None:
    """Remember ``--verbose`` for `main`, and set the screen's logging for it."""
    from nighttune.flows.console import screen_logging

    global _VERBOSE
    _VERBOSE = verbose
    screen_logging(verbose)


@app.command(short_help="LR range tests, then the batch size x patience grid; export the best.")
@with_flags(*TUNE_FLAGS)
def tune(
    config: ConfigOpt = None,
    overrides: Overrides | None = None,
    verbose: VerboseOpt = False,
) -> None:
    """Find the LR per batch size, train the batch size x patience grid, export the best."""
    from nighttune.tasks.core.config_file import load_tune_config

    _set_verbose(verbose)
    cfg = load_tune_config(config, overrides or {})

    from nighttune.flows import startup
    from nighttune.flows.server import check_api
    from nighttune.tasks.runs.notify import by_reference

    check_api()  # a lasting server that is down or refuses us: one line, before any work
    # The flow runs in this process: it reads a plain --notify-url from our environment,
    # and the flow-run parameter (Prefect's database, its UI) holds only the reference.
    cfg = by_reference(cfg, os.environ)
    from prefect.settings import PREFECT_API_URL

    from nighttune.flows.console import screen_logging
    from nighttune.flows.screens import print_tune_result, say_where_the_record_is
    from nighttune.flows.server import local_flow_settings

    def check_and_import() -> None:  # while the temporary server starts
        from nighttune.flows.target import export_target
        from nighttune.tasks.preflight import preflight

        # A mistake is one line at once, before any flow run.
        preflight(cfg, target=export_target(cfg))
        import nighttune.flows.tune  # noqa: F401

    startup.mark(STARTED_AT)
    temporary = not PREFECT_API_URL.value()  # a server of this command's own, no UI
    with local_flow_settings(while_starting=check_and_import):
        from nighttune.flows.tune import tune as tune_flow

        screen_logging(_VERBOSE)  # Prefect's console handler exists now
        if temporary:  # (on a lasting server Prefect links the run's page in its UI)
            say_where_the_record_is(cfg.export_to)
        result = tune_flow(cfg)
    print_tune_result(result)


@app.command()
@with_flags(*DATA_FLAGS)
def cache(overrides: Overrides | None = None) -> None:
    """Prepare and cache a dataset, then print its splits.

    Run it where there is internet to download a TFDS catalog dataset into
    --data-dir; copy that folder to offline machines.
    """
    from nighttune.flows.screens import print_dataset
    from nighttune.tasks.core.config_file import load_tune_config
    from nighttune.tasks.data.datasets import load_dataset

    cfg = load_tune_config(None, overrides or {})
    print_dataset(cfg.dataset, load_dataset(cfg.dataset, cfg.cache_dir))


data_app = typer.Typer(
    help="Datasets offline: prepare a catalog dataset from local copies of its files.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("prepare", short_help="Prepare fashion_mnist or mnist from local IDX files.")
def data_prepare(name: PrepareNameArg, source: SourceOpt, data_dir: DataDirOpt = None) -> None:
    """Prepare a TFDS catalog dataset (fashion_mnist, mnist) from local copies of its
    source files, through TFDS's own builder, into --data-dir; their content is checked
    first (see docs/datasets.md). No network is used."""
    from nighttune.flows.screens import print_prepared
    from nighttune.tasks.data.prepare import prepare_catalog

    print_prepared(prepare_catalog(name, source, data_dir), source)


@app.command("lr-find", short_help="One learning-rate range test and every method's suggestion.")
@with_flags(*LR_FIND_FLAGS)
def lr_find(
    out: SweepOutOpt,
    batch_size: SweepBatchOpt = 64,
    overrides: Overrides | None = None,
) -> None:
    """Run one learning-rate range test and print every method's suggestion."""
    from nighttune.tasks.core.config_file import load_tune_config

    cfg = load_tune_config(None, overrides or {})

    from nighttune.flows.screens import print_sweep
    from nighttune.tasks.data.datasets import load_dataset
    from nighttune.tasks.tuning.lr_range import lr_range_test, save_sweep

    data = load_dataset(cfg.dataset, cfg.cache_dir)
    sweep = lr_range_test(data, cfg.model, batch_size, spec=cfg.lr_range, seed=cfg.seed)
    print_sweep(sweep, save_sweep(sweep, out))


@app.command(short_help="Predict images or examples with an exported run; write a CSV.")
def predict(  # noqa: PLR0913  its parameters are the command's options
    *,
    model: RunOpt,
    images: ImagesOpt = None,
    inputs: InputsOpt = None,
    out: CsvOutOpt = "predictions.csv",
    batch_size: PredictBatchOpt = None,
    top_k: TopKOpt = 1,
    cache_dir: CacheDirOpt = None,
    s3_endpoint_url: S3EndpointOpt = None,
    code_dir: CodeDirOpt = ".",
    verbose: VerboseOpt = False,
) -> None:
    """Predict every image under the folders (or every example of --inputs) with an
    exported run; one CSV row per file or example."""
    from nighttune.flows.screens import ProgressBar, print_predictions

    _set_verbose(verbose)
    from nighttune.tasks.inference.arrays import predict_rows_to_csv
    from nighttune.tasks.runs.reader import RunAccess

    access = RunAccess(cache_dir=cache_dir, endpoint_url=s3_endpoint_url, code_dir=code_dir)
    with ProgressBar("ex" if inputs else "img") as progress:
        summary = predict_rows_to_csv(
            model,
            images=images,
            inputs=inputs,
            out=out,
            batch_size=batch_size,
            top_k=top_k,
            progress=progress,
            access=access,
        )
    print_predictions(summary)


@app.command(short_help="The history of runs under an export target: a table and a plot.")
def report(
    history: HistoryOpt,
    out: HistoryOutOpt = ".",
    s3_endpoint_url: S3EndpointOpt = None,
) -> None:
    """One row per run under an export target (winner, accuracy, duration) and a trend plot."""
    from nighttune.tasks.runs.history import run_history, write_history
    from nighttune.tasks.storage.target import make_target

    target = make_target(history, s3_endpoint_url)
    frame = run_history(target)  # read every manifest once
    csv_path, png_path = write_history(target, out, frame=frame)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote       {csv_path}")
    print(f"            {png_path}")


@app.command(short_help="Start the Prefect server for nightly runs.")
def server(
    *,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 4200,
    trusted_network: TrustedNetworkOpt = False,
    ui_api_url: UiApiUrlOpt = None,
) -> None:
    """Start the Prefect server for nightly runs (`prefect server start`, tuned).

    Off loopback it needs PREFECT_SERVER_API_AUTH_STRING=user:password in the
    environment (never as an argument: `ps` shows those to every user), or
    --trusted-network: anyone who reaches the API can run code on every worker. With
    an auth string the API and UI ask for it (clients and workers send it as
    PREFECT_API_AUTH_STRING) and CSRF protection is on.
    Its task-run recorder writes in batches: on Prefect's default SQLite
    database that saves a 2 s client retry on many task starts (see
    flows/server.py). Its UI reaches the API at --ui-api-url, else at this --host and
    --port (for 0.0.0.0: this machine's name), whatever PREFECT_API_URL says.
    Variables already set in the environment win. The database: SQLite under
    PREFECT_HOME, or the one named by PREFECT_SERVER_DATABASE_CONNECTION_URL.
    """
    from nighttune.flows.server import (
        auth_settings,
        check_auth,
        check_listen,
        security_summary,
        served_settings,
        ui_api_warning,
        unset_server_settings,
    )

    check_auth(host, trusted_network=trusted_network, environ=os.environ)
    check_listen(host, port)
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", host, "--port", str(port)]
    given = {"PREFECT_UI_API_URL": ui_api_url} if ui_api_url else {}
    served = served_settings(host, port, {**os.environ, **given}) | given | auth_settings()
    ui_api = served.get("PREFECT_UI_API_URL") or os.environ.get(
        "PREFECT_UI_API_URL", os.environ.get("PREFECT_SERVER_UI_API_URL", "")
    )
    print(f"nighttune: the UI at http://{host}:{port} reaches the API at {ui_api}")
    if warning := ui_api_warning(host, ui_api):
        print(f"nighttune: {warning}", file=sys.stderr)
    print(f"nighttune: {security_summary({**os.environ, **served})}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, {**os.environ, **unset_server_settings(), **served})


def _fail(message: str, code: int) -> int:
    """Each line of ``message`` (a config's mistakes: one each) as an error line."""
    for line in message.splitlines() or [message]:
        print(f"nighttune: error: {line}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nighttune`` console script; returns the exit status."""
    from nighttune.flows import interrupts
    from nighttune.flows.console import console_logging

    console_logging()
    interrupts.install()
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=sys.argv[1:] if argv is None else argv,
            prog_name="nighttune",
            standalone_mode=False,
        )
    except BaseException as exc:
        status = _exit_status(exc)
        if status is None:
            raise  # not one to say in a line: it propagates with its traceback
        return status
    if result == 130:  # typer turns KeyboardInterrupt into Exit(130), returned here
        interrupts.say_once()
    return result if isinstance(result, int) else 0


def _exit_status(exc: BaseException) -> int | None:
    """The exit status for what a command raised, once its one line is said; None for
    what must propagate with its traceback."""
    from nighttune.flows import interrupts

    if isinstance(exc, UsageError):
        return _usage_status(exc)
    if isinstance(exc, typer.Abort | KeyboardInterrupt):  # click turns Ctrl-C into Abort
        interrupts.say_once()
        return 130
    if isinstance(exc, UserError):
        return _fail(str(exc), 2)
    if isinstance(exc, TrialFailed):
        return _fail(str(exc), 1)
    if isinstance(exc, Exception):
        return _error_status(exc)
    return _signal_status(exc)


def _usage_status(exc: UsageError) -> int:
    """No arguments: the help, and 0. Wrong ones: a line pointing at the help, and 2."""
    if isinstance(exc, NoArgsIsHelpError):
        print(exc.ctx.get_help() if exc.ctx else "nighttune --help")
        return 0
    where = f"{exc.ctx.command_path} --help" if exc.ctx else "nighttune --help"
    message = exc.format_message().replace("Value error, ", "")  # typer's choices
    return _fail(f"{message} (see `{where}`)", 2)


def _error_status(exc: Exception) -> int | None:
    """1 for a failure of the environment (a full disk, a lost connection), said in one
    line; None for a bug, or for anything under --verbose."""
    from nighttune.flows.console import environmental

    if _VERBOSE or not environmental(exc):
        return None
    return _fail(f"{clean_tf_message(first_line(exc))} (--verbose shows where)", 1)


def _signal_status(exc: BaseException) -> int | None:
    """128 + the signal's number for a stop by a signal (`flows.interrupts`); None for
    anything else."""
    from nighttune.flows import interrupts

    signum = interrupts.signal_of(exc)
    if signum is None:
        return None
    interrupts.say_once()
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
