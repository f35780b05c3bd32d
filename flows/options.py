"""The options of commands that are not `TuneConfig` keys (those are made in `flows.flags`).

A text option refuses an empty or blank value (`nonblank`): `--out ""` is a mistake, not
"the default". Numbers carry their bounds, so click refuses them in one line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from nighttune.flows.flags import field_help


def nonblank(value: Any) -> Any:
    """A text option's callback: an empty value is a mistake (not "the default")."""
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, str) and not v.strip() for v in values):
        raise typer.BadParameter("is empty; give a value or leave the option out")
    return value


def text(name: str, metavar: str, help: str) -> Any:
    """A text option that refuses an empty value."""
    return typer.Option(name, callback=nonblank, metavar=metavar, help=help)


S3_ENDPOINT_HELP = "S3-compatible endpoint (MinIO)."

VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", help="Show tracebacks of failures (a one-line error is the default)."
    ),
]
ConfigOpt = Annotated[
    str | None, text("--config", "PATH", "YAML file of TuneConfig keys; flags override it.")
]
S3EndpointOpt = Annotated[str | None, text("--s3-endpoint-url", "URL", S3_ENDPOINT_HELP)]
CacheDirOpt = Annotated[str | None, text("--cache-dir", "PATH", field_help("cache_dir"))]

# lr-find
SweepOutOpt = Annotated[str, text("--out", "FOLDER", "Folder for lr_sweep_b<batch>.json and .png.")]
SweepBatchOpt = Annotated[
    int, typer.Option("--batch-size", metavar="INTEGER", min=1, help="Batch size of the sweep.")
]

# predict: image files and folders, or one array file of examples
RunOpt = Annotated[
    str,
    text(
        "--model",
        "RUN",
        "A run: ./exports/latest, ./exports/<run-id>, "
        "s3://bucket/prefix/latest or s3://bucket/prefix/<run-id>.",
    ),
]
ImagesOpt = Annotated[
    list[str] | None,
    text("--images", "PATH", "An image file or a folder of them (searched recursively); repeat."),
]
InputsOpt = Annotated[
    str | None,
    text(
        "--inputs",
        "FILE",
        "Instead of --images: a .npy (n, *input shape) or .csv (one example a line) "
        "file; one row per example, path FILE:INDEX.",
    ),
]
CsvOutOpt = Annotated[str, text("--out", "PATH", "CSV to write.")]
PredictBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        metavar="INTEGER",
        min=1,
        help="Images per batch. Default: as many as fit 16 MiB of input, 32 to 1024.",
    ),
]
TopKOpt = Annotated[
    int,
    typer.Option(
        "--top-k",
        metavar="INTEGER",
        min=1,
        help="Also write the next k-1 labels and confidences.",
    ),
]
CodeDirOpt = Annotated[
    str,
    text(
        "--code-dir",
        "FOLDER",
        "Folder of the builder module a run was made with (its custom layers); "
        "only modules found there are imported.",
    ),
]

# report
HistoryOpt = Annotated[
    str,
    text("--history", "PATH|s3://BUCKET/PREFIX", "Export target: a folder or s3://bucket/prefix."),
]
HistoryOutOpt = Annotated[str, text("--out", "FOLDER", "Folder for history.csv and .png.")]

# server
HostOpt = Annotated[
    str, text("--host", "ADDRESS", "Address to listen on; 0.0.0.0 for other machines.")
]
PortOpt = Annotated[
    int,
    typer.Option("--port", metavar="INTEGER", min=1, max=65535, help="Port of the API and UI."),
]
TrustedNetworkOpt = Annotated[
    bool,
    typer.Option(
        "--trusted-network",
        help="Serve on a non-loopback --host without PREFECT_SERVER_API_AUTH_STRING: only "
        "when nobody but your team can reach this network (anyone who reaches the API can "
        "run code on every worker).",
    ),
]
UiApiUrlOpt = Annotated[
    str | None,
    text(
        "--ui-api-url",
        "URL",
        "Where browsers reach the API (http(s)://SERVER:PORT/api, or a proxy's address). "
        "Default: PREFECT_UI_API_URL, else this --host and --port.",
    ),
]

# data prepare
PrepareNameArg = Annotated[
    Literal["fashion_mnist", "mnist"], typer.Argument(help="The catalog dataset.")
]
SourceOpt = Annotated[
    str,
    text(
        "--from",
        "FOLDER",
        "The folder holding its four IDX .gz files (train/t10k images and labels), e.g. "
        "/usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist.",
    ),
]
DataDirOpt = Annotated[str | None, text("--data-dir", "PATH", field_help("dataset.data_dir"))]
