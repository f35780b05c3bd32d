"""Every fault and bad input the reliability tests try, as data.

The tests parametrize over these tables, and ``python -m tests.support.reliability`` renders
them as ``docs/reliability.md`` (`make docs`); `test_reliability_doc_is_current`
fails when the file and the tables disagree, so the document cannot drift from what
is tested. Kept free of heavy imports: rendering must not load TensorFlow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BadInput:
    """One user mistake: ``nighttune ARGV`` must exit 2 with one line containing ``needle``.

    Placeholders in ``argv``: ``{tmp}`` a fresh folder (also the working directory),
    ``{run}`` a real exported run, ``{images}`` a folder of real PNG files, ``{yaml}``
    a file holding ``yaml``, ``{empty}`` an empty folder, ``{one_class}`` a folder with
    one class subfolder, ``{not_a_run}`` an empty folder, and copies of ``{run}``:
    ``{tampered}`` (model.keras changed after export), ``{corrupt}`` (model.keras not a
    Keras file, manifest checksum updated to match) and ``{lambda_run}`` (a Lambda layer,
    checksum updated); runs whose manifest was rewritten (`CRAFTED_MANIFESTS`) by their
    names; ``{escaping_target}`` a target whose ``latest.json`` names ``../outside``,
    ``{a_file}`` a plain file, ``{an_image}`` one PNG file. ``tune`` cases export to
    ``{tmp}/exports`` unless they say where; ``env`` is added to the environment.
    """

    id: str
    area: str
    argv: tuple[str, ...]
    needle: str
    yaml: str | None = None
    absent: tuple[str, ...] = ()  # text that must not appear in the output (secrets)
    env: tuple[tuple[str, str], ...] = ()


# Runs copied from a real export with one manifest field rewritten (checksums kept):
# a bucket or folder that others can write to may hold any of these.
CRAFTED_MANIFESTS: dict[str, dict[str, object]] = {
    "escaping_files": {"files": {"../../outside.txt": "0" * 64}},
    "absolute_files": {"files": {"/tmp/nighttune-absolute.txt": "0" * 64}},
    "huge_shape": {"input_shape": [20000, 20000, 1]},
    "wrong_types": {"class_names": 5},
    "other_shape": {"input_shape": [9, 9, 1]},
}

# An alias bomb: nine levels of nine aliases, 387 million strings once expanded.
ALIAS_BOMB = "".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)]
)


SECRET_TOKEN = "tok3n-never-shown"

BAD_INPUTS: tuple[BadInput, ...] = (
    # --- command line
    BadInput("unknown-flag", "flags", ("tune", "--bogus"), "No such option: --bogus"),
    BadInput("unknown-command", "flags", ("frobnicate",), "No such command 'frobnicate'"),
    BadInput("seed-not-int", "flags", ("tune", "--seed", "x"), "Invalid value for '--seed'"),
    BadInput(
        "batch-sizes-not-ints",
        "flags",
        ("tune", "--batch-sizes", "32,x"),
        "'--batch-sizes': wants comma-separated integers",
    ),
    BadInput(
        "batch-sizes-empty-part",
        "flags",
        ("tune", "--batch-sizes", "32,,64"),
        "'--batch-sizes': wants comma-separated integers such as 32,64,128 (got '32,,64')",
    ),
    BadInput(
        "batch-sizes-duplicate",
        "flags",
        ("tune", "--batch-sizes", "32,32"),
        "batch_sizes: has duplicates: 32",
    ),
    BadInput(
        "patience-zero",
        "flags",
        ("tune", "--patiences", "0,3"),
        "patiences: every value must be a positive integer",
    ),
    BadInput("max-epochs-zero", "flags", ("tune", "--max-epochs", "0"), "max_epochs"),
    BadInput(
        "lr-range-reversed",
        "flags",
        ("tune", "--start-lr", "1", "--end-lr", "0.1"),
        "start_lr (1) must be below end_lr",
    ),
    BadInput(
        "monitor-not-logged",
        "flags",
        ("tune", "--monitor", "sparse_categorical_accuracy"),
        "not a metric the model logs",
    ),
    BadInput("lr-method-unknown", "flags", ("tune", "--lr-method", "best"), "'best' is not one of"),
    BadInput(
        "image-size-one-number",
        "flags",
        ("tune", "--image-size", "28"),
        "'--image-size': wants HEIGHT,WIDTH",
    ),
    BadInput("image-size-zero", "flags", ("tune", "--image-size", "0,28"), "dataset.image_size"),
    BadInput(
        "seed-negative",
        "flags",
        ("tune", "--seed", "-1"),
        "seed: should be at least 0 (got -1)",
    ),
    BadInput(
        "image-size-huge",
        "flags",
        ("tune", "--image-size", "10000,10000"),
        "dataset.image_size: at most 8192 a side",
    ),
    BadInput("dispatch-unknown", "flags", ("tune", "--dispatch", "cluster"), "dispatch"),
    BadInput(
        "dispatch-without-server",
        "flags",
        ("tune", "--dispatch", "deployments"),
        "needs a Prefect server",
    ),
    BadInput(
        "promote-unknown", "flags", ("tune", "--promote", "sometimes"), "'sometimes' is not one of"
    ),
    BadInput(
        "notify-url-not-http",
        "flags",
        ("tune", "--notify-url", "ftp://hooks.example.com/T0/secret"),
        "notify_url: give http(s)://host[:port]/path",
    ),
    BadInput(
        "time-budget-not-a-duration",
        "flags",
        ("tune", "--time-budget", "tonight"),
        "time_budget: give seconds or a duration like 90m, 2h, 1h30m",
    ),
    BadInput(
        "deadline-not-a-time",
        "flags",
        ("tune", "--deadline", "6.30"),
        "give a time of day as HH:MM",
    ),
    BadInput("timezone-unknown", "flags", ("tune", "--timezone", "Mars/Base"), "unknown time zone"),
    BadInput(
        "select-unknown",
        "flags",
        ("tune", "--select", "cheapest"),
        "'cheapest' is not one of 'best', 'cheapest_within_noise'",
    ),
    BadInput(
        "select-alpha-out-of-range",
        "flags",
        ("tune", "--select-alpha", "1.5"),
        "select_alpha: should be below 1 (got 1.5)",
    ),
    BadInput(
        "promote-margin-nan",
        "flags",
        ("tune", "--promote-margin", "nan"),
        "promote_margin",
    ),
    BadInput(
        "lr-find-batch-zero",
        "flags",
        ("lr-find", "--out", "{tmp}/lr", "--batch-size", "0"),
        "'--batch-size': Input should be greater than or equal to 1",
    ),
    # --- YAML config
    BadInput(
        "yaml-unknown-key",
        "config",
        ("tune", "--config", "{yaml}"),
        "unknown key 'patience'",
        yaml="batch_sizes: [32]\npatience: [3]\n",
    ),
    BadInput(
        "yaml-not-a-mapping",
        "config",
        ("tune", "--config", "{yaml}"),
        "must be a mapping of keys",
        yaml="- 32\n- 64\n",
    ),
    BadInput(
        "yaml-syntax",
        "config",
        ("tune", "--config", "{yaml}"),
        "is not valid YAML at line",
        yaml="batch_sizes: [32, 64\nmax_epochs: 3\n",
    ),
    BadInput(
        "yaml-wrong-type",
        "config",
        ("tune", "--config", "{yaml}"),
        "max_epochs: should be an integer such as 30 (got 'many')",
        yaml="max_epochs: many\n",
    ),
    BadInput(
        "yaml-alias-bomb",
        "config",
        ("tune", "--config", "{yaml}"),
        "expands to over 100000 values through YAML aliases",
        yaml=ALIAS_BOMB + "monitor: *a8\n",
    ),
    BadInput(
        "yaml-long-value",
        "config",
        ("tune", "--config", "{yaml}"),
        "monitor: should be text such as val_accuracy (got [",
        yaml="monitor: [" + ", ".join(["val_accuracy_of_a_long_name"] * 2000) + "]\n",
        absent=("val_accuracy_of_a_long_name, " * 10,),
    ),
    BadInput(
        "yaml-missing-file",
        "config",
        ("tune", "--config", "{tmp}/no-such.yaml"),
        "cannot read config",
    ),
    # --- the user's builders
    BadInput(
        "builder-no-colon",
        "builders",
        ("tune", "--config", "{yaml}"),
        "model.builder: must be module:function",
        yaml="model: {builder: my_models.build}\n",
    ),
    BadInput(
        "builder-module-missing",
        "builders",
        ("tune", "--config", "{yaml}"),
        "no module 'my_models' in ",
        yaml="model: {builder: 'my_models:build'}\n",
    ),
    BadInput(
        "builder-function-missing",
        "builders",
        ("tune", "--config", "{yaml}"),
        "has no function 'biuld'",
        yaml="code_dir: {project}\nmodel: {builder: 'my_models:biuld'}\n",
    ),
    BadInput(
        "data-builder-no-train",
        "builders",
        ("tune", "--config", "{yaml}"),
        "must return a mapping with a 'train' split",
        yaml="code_dir: {project}\ndataset: {builder: 'my_data:no_train'}\n",
    ),
    BadInput(
        "data-builder-raises",
        "builders",
        ("tune", "--config", "{yaml}"),
        "builder 'my_data:unreadable' raised ValueError: cannot read wine.csv",
        yaml="code_dir: {project}\ndataset: {builder: 'my_data:unreadable'}\n",
    ),
    BadInput(
        "data-name-and-builder",
        "builders",
        ("tune", "--config", "{yaml}"),
        "dataset.name (mnist) and dataset.builder (my_data:blobs) both say what to train on",
        yaml="code_dir: {project}\ndataset: {name: mnist, builder: 'my_data:blobs'}\n",
    ),
    BadInput(
        "model-kind-and-builder",
        "builders",
        ("tune", "--config", "{yaml}"),
        "model.kind (cnn) and model.builder (my_models:build) both say what model to train",
        yaml="code_dir: {project}\nmodel: {kind: cnn, builder: 'my_models:build'}\n",
    ),
    BadInput(
        "model-does-not-fit-data",
        "builders",
        ("tune", "--config", "{yaml}"),
        "does not fit the data (inputs [6]",
        yaml="code_dir: {project}\ndataset: {builder: 'my_data:blobs'}\nmodel: {kind: cnn}\n",
    ),
    # --- datasets
    BadInput(
        "dataset-typo",
        "dataset",
        ("tune", "--dataset", "mnsit"),
        "unknown dataset 'mnsit'; did you mean mnist",
    ),
    BadInput(
        "dataset-folder-missing",
        "dataset",
        ("tune", "--dataset", "{tmp}/no/such/folder"),
        "does not exist",
    ),
    BadInput(
        "dataset-folder-empty",
        "dataset",
        ("tune", "--dataset", "{empty}"),
        "has 0 class subfolder(s)",
    ),
    BadInput(
        "dataset-one-class",
        "dataset",
        ("tune", "--dataset", "{one_class}"),
        "has 1 class subfolder(s) with images (cat)",
    ),
    BadInput(
        "catalog-offline",
        "dataset",
        ("tune", "--dataset", "mnist", "--data-dir", "{tmp}/tfds"),
        "mnist is not prepared",
    ),
    # --- S3 and export targets
    BadInput(
        "s3-unreachable",
        "S3",
        ("tune", "--export-to", "s3://bucket/prefix"),
        "s3://bucket: cannot connect to http://127.0.0.1:9",
    ),
    BadInput(
        "s3-proxy-down",
        "S3",
        ("tune", "--export-to", "s3://bucket/prefix", "--s3-endpoint-url", "http://s3.example"),
        "cannot connect to the proxy http://127.0.0.1:9",
    ),
    BadInput("s3-no-bucket", "S3", ("tune", "--export-to", "s3:///prefix"), "has no bucket"),
    BadInput("target-scheme", "S3", ("tune", "--export-to", "ftp://host/x"), "give a local folder"),
    BadInput("target-one-slash", "S3", ("tune", "--export-to", "s3:/b/x"), "give a local folder"),
    BadInput(
        "s3-bucket-invalid",
        "S3",
        ("tune", "--export-to", "s3://../prefix"),
        "'..' is not a bucket name",
    ),
    BadInput(
        "s3-endpoint-env-with-token",
        "S3",
        ("tune", "--export-to", "s3://bucket/prefix"),
        "AWS_ENDPOINT_URL must not carry credentials",
        absent=(SECRET_TOKEN,),
        env=(("AWS_ENDPOINT_URL", f"http://key:{SECRET_TOKEN}@127.0.0.1:9"),),
    ),
    BadInput(
        "export-to-a-file",
        "S3",
        ("tune", "--export-to", "{a_file}/exports"),
        "is a file, not a folder",
    ),
    BadInput(
        "s3-endpoint-with-token",
        "S3",
        ("tune", "--s3-endpoint-url", f"http://key:{SECRET_TOKEN}@127.0.0.1:9"),
        "must not carry credentials",
        absent=(SECRET_TOKEN,),
    ),
    BadInput(
        "predict-s3-unreachable",
        "S3",
        ("predict", "--model", "s3://bucket/runs/latest", "--images", "{images}"),
        "s3://bucket: cannot connect to http://127.0.0.1:9",
    ),
    BadInput(
        "prepare-missing-files",
        "dataset",
        ("data", "prepare", "fashion_mnist", "--from", "{empty}"),
        "lacks train-images-idx3-ubyte.gz",
    ),
    BadInput(
        "prepare-other-dataset",
        "dataset",
        ("data", "prepare", "cifar10", "--from", "{empty}"),
        "'cifar10' is not one of 'fashion_mnist', 'mnist'",
    ),
    # --- model paths
    BadInput(
        "model-missing",
        "model",
        ("predict", "--model", "{tmp}/nothing", "--images", "{images}"),
        "does not exist",
    ),
    BadInput(
        "model-a-file",
        "model",
        ("predict", "--model", "{a_file}", "--images", "{images}"),
        "is a file, not a run folder",
    ),
    BadInput(
        "model-not-a-run",
        "model",
        ("predict", "--model", "{not_a_run}", "--images", "{images}"),
        "is not an exported run",
    ),
    BadInput(
        "model-corrupt-keras",
        "model",
        ("predict", "--model", "{corrupt}", "--images", "{images}"),
        "will not load",
    ),
    BadInput(
        "model-checksum-mismatch",
        "model",
        ("predict", "--model", "{tampered}", "--images", "{images}"),
        "does not match the manifest's checksum",
    ),
    BadInput(
        "model-lambda-layer",
        "model",
        ("predict", "--model", "{lambda_run}", "--images", "{images}"),
        "holds code (a Lambda layer) that safe_mode refuses",
    ),
    BadInput(
        "model-latest-escapes",
        "model",
        ("predict", "--model", "{escaping_target}/latest", "--images", "{images}"),
        "run id '../outside' is not a run folder name",
    ),
    BadInput(
        "model-manifest-escapes",
        "model",
        ("predict", "--model", "{escaping_files}", "--images", "{images}"),
        "file name '../../outside.txt' is refused",
    ),
    BadInput(
        "model-manifest-absolute",
        "model",
        ("predict", "--model", "{absolute_files}", "--images", "{images}"),
        "file name '/tmp/nighttune-absolute.txt' is refused: it is absolute",
    ),
    BadInput(
        "model-input-huge",
        "model",
        ("predict", "--model", "{huge_shape}", "--images", "{images}"),
        "input_shape: height and width must be 1..8192",
    ),
    BadInput(
        "model-manifest-types",
        "model",
        ("predict", "--model", "{wrong_types}", "--images", "{images}"),
        "class_names: Input should be a valid list",
    ),
    BadInput(
        "model-shape-disagrees",
        "model",
        ("predict", "--model", "{other_shape}", "--images", "{images}"),
        "its manifest says input [9, 9, 1]",
    ),
    BadInput(
        "model-flag-missing",
        "model",
        ("predict", "--images", "{images}"),
        "Missing option '--model'",
    ),
    # --- image folders
    BadInput(
        "images-missing",
        "images",
        ("predict", "--model", "{run}", "--images", "{tmp}/nope"),
        "does not exist",
    ),
    BadInput(
        "images-empty",
        "images",
        ("predict", "--model", "{run}", "--images", "{empty}"),
        "no image files",
    ),
    BadInput(
        "images-not-an-image",
        "images",
        ("predict", "--model", "{run}", "--images", "{run}/manifest.json"),
        "is not an image file (.bmp, .gif, .jpeg, .jpg, .png) nor a folder of them",
    ),
    BadInput(
        "predict-out-a-folder",
        "images",
        ("predict", "--model", "{run}", "--images", "{images}", "--out", "{empty}"),
        "is a folder; give the CSV file to write",
    ),
    BadInput(
        "predict-batch-zero",
        "images",
        ("predict", "--model", "{run}", "--images", "{images}", "--batch-size", "0"),
        "'--batch-size': Input should be greater than or equal to 1",
    ),
    BadInput(
        "history-missing",
        "images",
        ("report", "--history", "{tmp}/no-exports"),
        "does not exist",
    ),
)


@dataclass(frozen=True)
class KillPoint:
    """``nighttune tune`` SIGKILLed (whole process group) once ``log`` appears on its
    output and ``path`` (a glob under the test folder) exists; then run again."""

    id: str
    when: str
    log: str
    path: str | None
    done_before: tuple[str, ...]  # work finished (stored) at the kill; never redone
    extra: dict[str, str] = field(default_factory=dict)


# The grid of the resume tests: batch sizes 32 and 64, one sweep and one fit each.
ALL_WORK = ("sweep b32", "sweep b64", "trial b32", "trial b64")

KILL_POINTS: tuple[KillPoint, ...] = (
    KillPoint(
        "dataset",
        "while the dataset cache's train split is being written",
        "preprocessing and caching",
        "cache/datasets/*.tmp-*/train",
        (),
    ),
    KillPoint(
        "lr-sweep",
        "during the second LR sweep (batch size 64)",
        "lr sweep, batch size 64:",
        None,
        ("sweep b32",),
    ),
    KillPoint(
        "mid-trial",
        "in the middle of the second trial (batch size 64, after its epoch 2)",
        "trial b64: epoch 2,",
        None,
        ("sweep b32", "sweep b64", "trial b32"),
    ),
    KillPoint(
        "export",
        "while the export's SavedModel is being written",
        "export: writing",
        "exports/*.tmp-*/saved_model",
        ALL_WORK,
    ),
)

RESUME_CHECKS = (
    "the rerun exits 0 and prints the winner",
    "the rerun runs exactly the sweeps and fits that had not finished (counted)",
    "no `latest.json` after the kill; after the rerun it names a run whose files match "
    "its manifest",
    "the dataset cache entry verifies (every file's sha256) and is a cache hit",
    "no staging folder is left behind in the cache or the export target",
)


@dataclass(frozen=True)
class Fault:
    """A fault not covered by the tables above: what is done, and what must follow."""

    id: str
    what: str
    outcome: str
    test: str  # file::function that does it
    expect: tuple[str, ...] = ()  # texts the failed rows' error must contain


TRAINING_FAULTS: tuple[Fault, ...] = (
    Fault(
        "nan-loss",
        "the LR chosen for batch size 32 is replaced by 1e20; real training diverges",
        "its rows are failed with the reason shown; the other trials finish; the winner "
        "is one of them",
        "tests/integration/test_faults.py::test_nan_and_oom_trials_fail_with_reasons_and_the_rest_win",
        ("loss became NaN in epoch 1 at lr 1e+20 (TerminateOnNaN stopped the fit)",),
    ),
    Fault(
        "out-of-memory",
        "in the batch-size-64 fit, epoch 2 allocates a 4 TiB tensor (TensorFlow's own "
        "ResourceExhaustedError)",
        "its rows are failed with the reason shown; the winner is among the others; the "
        "failed trial is not stored, so a rerun tries it again",
        "tests/integration/test_faults.py::test_nan_and_oom_trials_fail_with_reasons_and_the_rest_win",
        (
            "trial b64 ran out of memory (ResourceExhaustedError: ",
            "OOM when allocating tensor",
            "a smaller batch size or model may fit",
        ),
    ),
)

OTHER_FAULTS: tuple[Fault, ...] = (
    Fault(
        "concurrent-exports",
        "two `nighttune tune` processes at once, same cache, same export folder",
        "both exit 0; both run folders verify against their manifests; `latest.json` is "
        "valid JSON naming the newer run; no staging folder left",
        "tests/e2e/test_resume.py::test_two_runs_at_once_to_one_target_both_export_intact",
    ),
    Fault(
        "no-secrets",
        "a tune run to S3 (moto_server) with a unique AWS secret key and session token",
        "neither appears in stdout/stderr, in any S3 object, or in any file under HOME — "
        "Prefect's database with its logs, parameters and artifacts included",
        "tests/integration/test_s3.py::test_cli_tune_to_s3_never_shows_the_secret",
    ),
    Fault(
        "damaged-cache",
        "a cached dataset file truncated",
        "the entry fails its sha256 check and is rebuilt, not trusted",
        "tests/integration/test_data.py::test_truncated_entry_is_rebuilt",
    ),
    Fault(
        "s3-manifest-escapes",
        "a crafted run in the bucket whose manifest lists `../../…/victim/planted.txt` or "
        "an absolute path (with matching sha256, objects uploaded); `predict --model "
        "s3://…/latest`",
        "exit 2, one line (`is refused`); no file written anywhere, the cache included",
        "tests/e2e/test_hostile.py::test_s3_manifest_naming_files_outside_the_copy_writes_nothing",
    ),
    Fault(
        "s3-latest-run-id-path",
        "an S3 `latest.json` whose run id is an absolute folder, `../../victim`, `..` or "
        "`a/../../b`; also `s3://…/..` as the reference",
        "exit 2, one line (`is not a run folder name`); the victim folder untouched",
        "tests/e2e/test_hostile.py::test_s3_latest_naming_a_path_removes_nothing",
    ),
    Fault(
        "s3-damaged-documents",
        "an S3 `latest.json` that is not JSON, has a wrong type, nests 50,000 deep or is "
        "100 kB; a manifest listing an object that is not in the bucket",
        "exit 2, one line each (`is damaged (…)`, `is over 65536 bytes`, `listed in its "
        "manifest, is not in the bucket`)",
        "tests/e2e/test_hostile.py::test_s3_damaged_documents_and_missing_objects_are_one_line",
    ),
    Fault(
        "worker-result-escapes",
        "a worker's published trial result in the bucket listing `../../…/victim/planted.txt`",
        "refused before any download (`UnsafePath`); nothing written",
        "tests/e2e/test_hostile.py::test_a_worker_result_naming_files_outside_is_refused",
    ),
    Fault(
        "s3-latest-older-wins",
        "an older run finishing after a newer one, and a writer whose read is stale",
        "`latest.json` keeps the newer run (compare, then a conditional PUT: If-Match / "
        "If-None-Match); the stale writer's PUT fails",
        "tests/e2e/test_hostile.py::test_s3_latest_never_goes_back_to_an_older_run",
    ),
    Fault(
        "image-folder-traps",
        "an image folder with a FIFO named `.png`, a link to `/dev/zero`, a link to `/` and "
        "a file name that is not UTF-8 (`\\xff\\xfe.png`)",
        "`predict` exits 0 at once: the FIFO and `/dev/zero` are rows `not a regular file`, "
        "`/` is not walked, the odd name is predicted and written with `\\x` escapes "
        "(the CSV is valid UTF-8); a note says so",
        "tests/e2e/test_hostile.py::test_predict_reads_only_regular_files_and_keeps_odd_names",
    ),
    Fault(
        "training-folder-traps",
        "the same folder as a training dataset (`nighttune cache --dataset`)",
        "caches the 7 readable images; one warning line for the 2 not read, one for the "
        "link not followed",
        "tests/e2e/test_hostile.py::test_a_training_folder_with_odd_files_caches",
    ),
    Fault(
        "disk-full",
        "`predict --out` on a 64 KiB file system (tmpfs in a mount namespace) for 1,200 images",
        "exit 1, one line (`No space left on device`), no traceback, no partial file left",
        "tests/e2e/test_hostile.py::test_a_full_disk_is_one_line_and_leaves_no_partial_file",
    ),
    Fault(
        "export-disk-full",
        "`tune --export-to` a 200 KiB file system: the SavedModel write fails "
        "(TensorFlow's ResourceExhaustedError)",
        "exit 1, one line (`No space left on device`); Prefect's failure logs one line "
        "each, no traceback on the screen; the staged run folder removed",
        "tests/e2e/test_hostile.py::test_a_full_export_disk_is_one_line",
    ),
    Fault(
        "cache-would-not-fit",
        "`nighttune cache` of 36 images at `--image-size 4096,4096` with the cache on a "
        "1 MiB file system",
        "exit 2 before writing, one line (`needs about 2.3 GiB and … 1.0 MiB free`)",
        "tests/e2e/test_hostile.py::test_a_dataset_that_would_not_fit_the_disk_is_refused_before_writing",
    ),
    Fault(
        "s3-connection-cut",
        "the S3 server stops answering (SIGSTOP) before `predict --model s3://…/latest` reads",
        "exit 1, one line (`Read timeout on endpoint URL`), no traceback",
        "tests/e2e/test_hostile.py::test_a_connection_cut_mid_download_is_one_line",
    ),
    Fault(
        "signals",
        "SIGTERM to `nighttune tune`, or SIGINT to its process group (Ctrl-C), mid-trial",
        "exit 143 / 130 within seconds with one line (`interrupted; rerun …`), no "
        "traceback; every child process, the temporary Prefect server included, is gone",
        "tests/e2e/test_cli.py::test_a_signal_stops_tune_at_once_with_its_server",
    ),
    Fault(
        "s3-interrupted",
        "the S3 server frozen (SIGSTOP) during an upload",
        "the export fails with one line; `latest.json` still names the previous complete run",
        "tests/integration/test_s3.py::test_server_stopped_mid_export_keeps_latest_on_the_complete_run",
    ),
)

SERVER_TEST = "tests/e2e/test_server_auth.py"
SERVER_FAULTS: tuple[Fault, ...] = (
    Fault(
        "server-open-without-auth",
        "`nighttune server --host 0.0.0.0` without PREFECT_SERVER_API_AUTH_STRING",
        "exit 2 before it binds, one line naming PREFECT_SERVER_API_AUTH_STRING and "
        "`--trusted-network`; nothing on stdout",
        f"{SERVER_TEST}::test_a_server_off_loopback_without_an_auth_string_exits_2_in_one_line",
    ),
    Fault(
        "server-wildcard-loopback-name",
        "a wildcard bind whose UI API address names a host that resolves to loopback",
        "a warning line with the fix (`--ui-api-url` or PREFECT_UI_API_URL)",
        f"{SERVER_TEST}::test_a_wildcard_bind_whose_name_is_loopback_is_a_warning_with_the_fix",
    ),
    Fault(
        "api-without-credentials",
        "requests to a server started with an auth string: none, a wrong one, the right one",
        "401, 401, 200; a state-changing request without the CSRF token 403; `/api/health` "
        "200 for probes; the UI's settings say BASIC auth and CSRF on",
        f"{SERVER_TEST}::test_the_api_asks_for_the_auth_string_and_csrf_is_on",
    ),
    Fault(
        "client-auth-missing-or-wrong",
        "`deployments/pools.py --check` (make deploy, make worker-cpu/gpu, the image), "
        "`nighttune tune --dispatch deployments`, `prefect worker start` and `prefect "
        "deployment run` with PREFECT_API_AUTH_STRING unset or wrong",
        "ours: exit 2, one line (`wants its auth string` / `refused "
        "PREFECT_API_AUTH_STRING`); Prefect's worker exits 1 at once with `401 "
        "Unauthorized`, no traceback; `prefect deployment run` exits 1 (Prefect prints "
        "its traceback); the auth string on no screen",
        f"{SERVER_TEST}::test_a_missing_or_wrong_auth_string_is_one_line",
    ),
    Fault(
        "webhook-token-nowhere",
        "with an auth string on the server: `nighttune tune --notify-url URL-with-token` "
        "(a night that fails), and `prefect deployment run` on a cpu worker whose "
        "environment holds NIGHTTUNE_NOTIFY_URL (a night cut by its budget)",
        "both POSTs arrive; the CLI run's parameter is `env:NIGHTTUNE_NOTIFY_URL`; neither "
        "the token nor the auth string is in Prefect's database files, the server's or "
        "worker's log, the export folders or on the screen",
        f"{SERVER_TEST}::test_runs_with_a_webhook_leave_its_token_and_the_auth_string_nowhere",
    ),
    Fault(
        "webhook-secret-block",
        "`notify_url: secret:NAME` naming a Prefect Secret block, and one that does not exist",
        "the block's URL is used; a missing block is a warning and no notification",
        f"{SERVER_TEST}::test_a_secret_block_names_the_webhook",
    ),
)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def _cut(text: str, limit: int = 70) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render() -> str:
    """docs/reliability.md, from the tables above."""
    out = [
        "# Reliability: faults and bad input tried",
        "",
        "What a crash, a fault or a user's mistake does to a run, and every fault and bad input",
        "the tests try, with the outcome each must have. Back to the [README](../README.md).",
        "",
        "A crash loses only the step it hit. Kill `nighttune tune` at any point — while the",
        "dataset cache is written, during an LR sweep, mid-trial, during the export — and the",
        "same command again reuses every sweep and trial that finished (they are kept in the",
        "cache, verified by sha256), redoes the rest, and removes what the killed process left",
        "half-written; `latest.json` never names a partial export. A trial whose loss goes NaN",
        "(`TerminateOnNaN`) or that runs out of memory becomes failed rows with the reason;",
        "the winner is chosen among the others. Models load with `safe_mode=True`, after the",
        "run's files are checked against its manifest. A user's mistake is one line on stderr",
        "and exit status 2, before any training: every such check is in `tasks/preflight.py`,",
        "which the `tune` flow runs as its first task (0.3 s on digits), so a scheduled or",
        "`prefect deployment run` run with a bad bucket fails in seconds with the same line,",
        "and which the CLI also runs before it starts a temporary Prefect server. A failure of",
        "the machine (a full disk, a cut connection) is one line and exit 1; `--verbose` shows",
        "the traceback (Prefect's task and flow failure logs keep theirs on the server, not on",
        "the screen). Ctrl-C or SIGTERM stops `nighttune tune` within seconds with one line",
        "and exit 130 / 143; its temporary Prefect server runs in a session of its own and is",
        "stopped with it; rerun the command to resume. A YAML config is refused when it is",
        "over 1 MiB or its aliases expand past 100,000 values, and errors never echo more than",
        "~80 characters of a value. No credential is printed, logged or exported.",
        "",
        "Generated by `make docs` (`python -m tests.support.reliability`) from the parameters of",
        "the tests that try them (`tests/support/reliability.py`); `make test` fails if this file",
        "is out of date. Every row is asserted by a test that runs the real thing.",
        "",
        f"## Bad input ({len(BAD_INPUTS)} cases, `tests/e2e/test_bad_input.py`)",
        "",
        "Each runs `nighttune` as a subprocess and must exit 2 with exactly one line",
        "`nighttune: error: ...` on stderr containing the text shown, no traceback, no",
        "`latest.json` and no output file written.",
        "",
    ]
    rows = [
        (
            case.area,
            case.id,
            "`nighttune "
            + " ".join(case.argv)
            + "`"
            + (f" with `{_cut(case.yaml.strip())}`" if case.yaml else "")
            + "".join(f" and `{name}={_cut(value, 30)}`" for name, value in case.env),
            f"`{case.needle}`"
            + (f"; never shows `{'`, `'.join(case.absent)}`" if case.absent else ""),
        )
        for case in BAD_INPUTS
    ]
    out += _table(("area", "case", "input", "error line contains"), rows)
    out += [
        "",
        "## Killed and resumed (`tests/e2e/test_resume.py`)",
        "",
        "`nighttune tune --batch-sizes 32,64` on digits is SIGKILLed (its whole process",
        "group) at each point, then the same command runs again. Every time:",
        "",
        *[f"- {check}" for check in RESUME_CHECKS],
        "",
    ]
    rows = [
        (
            kill.id,
            kill.when,
            ", ".join(kill.done_before) or "nothing",
            ", ".join(w for w in ALL_WORK if w not in kill.done_before) or "nothing",
        )
        for kill in KILL_POINTS
    ]
    out += _table(("kill point", "killed", "finished before the kill", "rerun does"), rows)
    out += [
        "",
        "## Safe model loading",
        "",
        "Every `keras.models.load_model` call in `tasks/` and `flows/` passes",
        "`safe_mode=True` (checked on the source by `test_every_model_load_is_safe`). A run",
        "is verified against its manifest's sha256 list before its model is loaded; the",
        "cases `model-checksum-mismatch`, `model-corrupt-keras` and `model-lambda-layer`",
        "above are the refusals.",
        "",
        "## Training faults (`tests/integration/test_faults.py`)",
        "",
    ]
    out += _table(
        ("fault", "done", "outcome", "reason recorded contains", "test"),
        [
            (f.id, f.what, f.outcome, " … ".join(f"`{e}`" for e in f.expect), f"`{f.test}`")
            for f in TRAINING_FAULTS
        ],
    )
    out += ["", "## Other faults", ""]
    out += _table(
        ("fault", "done", "outcome", "test"),
        [(f.id, f.what, f.outcome, f"`{f.test}`") for f in OTHER_FAULTS],
    )
    out += [
        "",
        f"## Securing the server (`{SERVER_TEST}`)",
        "",
        "A real `nighttune server` (on 127.0.0.1, with an auth string), pools, deployments,",
        "a cpu worker and `prefect deployment run` in their own processes; a webhook",
        "receiver on 127.0.0.1. See [production.md](production.md#securing-the-server).",
        "",
    ]
    out += _table(
        ("fault", "done", "outcome", "test"),
        [(f.id, f.what, f.outcome, f"`{f.test}`") for f in SERVER_FAULTS],
    )
    return "\n".join(out) + "\n"


DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"

if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if DOC.read_text() == render() else f"{DOC} is out of date: run make docs")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC}")
