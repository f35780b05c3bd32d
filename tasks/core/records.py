"""The records the grid passes around: plain data, no TensorFlow, Keras or Prefect.

A `TrialResult` is one (batch size, patience) cell; an `LRSweep` one range test; an
`ExportResult` where a run went; a `TuneResult` what a `tune` run produced. Ranking,
reports and the CLI read them without loading a framework (importing this module
takes pydantic only), as KerasTuner's `Trial` is the message between its Oracle and
its Tuner.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

# How a trial's LR was chosen: a rule of the range test (`tasks.tuning.lr_suggest`), or
# the fallback when no rule found a descent.
LRMethod = Literal["minimum", "steepest", "valley", "fallback"]
# How a trial's learning rate runs over its steps, its LR the peak
# (`tasks.tuning.schedules`).
LRSchedule = Literal["constant", "cosine", "one_cycle"]


def sweep_files(batch_size: int) -> tuple[str, str]:
    """The one place that names a sweep's files: (JSON, PNG)."""
    return f"lr_sweep_b{batch_size}.json", f"lr_sweep_b{batch_size}.png"


def curves_file(batch_size: int) -> str:
    """The one place that names a batch size's learning-curve plot."""
    return f"learning_curves_b{batch_size}.png"


def values_file(model_path: str) -> str:
    """The one place that names a cell's per-example validation values: saved beside its
    model (``…/model_e7.keras`` → ``…/val_e7.npy``), so they travel with it."""
    folder, _, name = model_path.rpartition("/")
    stem = name.removeprefix("model_").removesuffix(".keras")
    return f"{folder}/val_{stem}.npy" if folder else f"val_{stem}.npy"


class TrialResult(BaseModel):
    """One (batch size, patience) cell of the grid. Epochs are counted from 1."""

    batch_size: int
    patience: int
    lr: float | None  # None when the trial failed before its LR was known
    lr_method: LRMethod | None
    lr_schedule: LRSchedule = "constant"  # rows stored before schedules ran at a constant rate
    lr_factor: float = 1.0  # the trial's LR as a multiple of lr_method's suggestion (the bracket)
    status: Literal["ok", "failed", "not run"] = "ok"  # not run: cut by the time budget
    epochs_run: int | None = None
    # The schedule's length where a time budget planned it below max_epochs (None: not)
    planned_epochs: int | None = None
    stop_epoch: int | None = None  # None: ran to max_epochs without stopping
    best_epoch: int | None = None
    stopped_early: bool | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    metrics: dict[str, float] = {}  # every val_/test_ metric the model logs, by name
    # 95% interval of the monitored metric on validation (`tasks.core.stats.interval`,
    # or a bootstrap of the Keras metric where it is not a mean over examples).
    val_95ci: tuple[float, float] | None = None
    train_seconds: float | None = None
    examples_per_s: float | None = None
    training_loop: Literal["fused", "fit", "stream", "stream-fit"] | None = (
        None  # tasks.tuning.loops
    )
    reused: bool = False  # read from the store (trained by an earlier run), not trained now
    model_path: str | None = None
    # Where the fit this row was read off is kept (its epoch logs): also for a patience
    # it stopped before, by the hurdle or the time budget. A local path, never exported.
    fit_path: str | None = None
    error: str | None = None

    def scores_text(self, monitor: str = "val_accuracy") -> str:
        """``val auc 0.9912, test auc 0.9870``: the monitored metric on both splits
        (accuracy, else loss, where it is not a val_ metric the row has)."""
        name = monitor.removeprefix("val_")
        if self.value(f"val_{name}") is None:
            name = "accuracy" if self.value("val_accuracy") is not None else "loss"
        parts = []
        for split in ("val", "test"):
            value = self.value(f"{split}_{name}")
            parts.append(f"{split} {name} " + (f"{value:.4f}" if value is not None else "n/a"))
        return ", ".join(parts)

    def lr_text(self) -> str:
        """``lr 0.003 (steepest)``, or ``peak lr 0.009 (steepest x3, one_cycle)`` when the
        rate was annealed from it and the bracket chose a multiple of the suggestion."""
        rate = f"{self.lr:.3g}" if self.lr is not None else "n/a"
        origin = candidate_label(self.lr_method, self.lr_factor)
        if self.lr_schedule == "constant":
            return f"lr {rate} ({origin})"
        return f"peak lr {rate} ({origin}, {self.lr_schedule})"

    @property
    def cell(self) -> str:
        """``b32 p5``: the cell's name in logs, reports and the manifest."""
        return f"b{self.batch_size} p{self.patience}"

    def value(self, name: str) -> float | None:
        """A column (``val_accuracy``) or any logged metric (``val_auc``); None if absent."""
        found = getattr(self, name, None) if name in TrialResult.model_fields else None
        return found if isinstance(found, float) else self.metrics.get(name)


def rows_without_result(
    patiences: tuple[int, ...],
    batch_size: int,
    *,
    status: Literal["failed", "not run"],
    error: str,
) -> list[TrialResult]:
    """A batch size's rows when its fit gave nothing: one per patience, saying why."""
    return [
        TrialResult(
            batch_size=batch_size,
            patience=p,
            lr=None,
            lr_method=None,
            status=status,
            error=error,
        )
        for p in sorted(patiences)
    ]


ROW_METRICS = ("val_loss", "val_accuracy", "test_loss", "test_accuracy")


def scored(scores: dict[str, float]) -> dict[str, Any]:
    """A trial's evaluated ``scores`` as row fields: the four columns every report shows
    (when logged), and all of them under ``metrics``."""
    return {k: scores[k] for k in ROW_METRICS if k in scores} | {"metrics": dict(scores)}


def candidate_label(method: str | None, factor: float) -> str:
    """``steepest``, ``steepest x3``, ``steepest /3``: a bracket candidate by its origin."""
    if factor == 1.0:
        return str(method)
    if factor > 1.0:
        return f"{method} x{factor:g}"
    return f"{method} /{1.0 / factor:g}"


class RungResult(BaseModel):
    """One candidate LR's fit in one rung of a batch size's bracket
    (`tasks.tuning.halving`): a whole schedule over the rung's epochs, its best
    validation value of the monitored metric, and whether it went on."""

    batch_size: int
    rung: int  # 0: the first (shortest) rung
    epochs: int  # the rung's length: its schedule anneals over these epochs
    lr: float
    lr_method: LRMethod  # the rule whose suggestion the candidate is a multiple of
    lr_factor: float
    value: float | None  # None: the fit failed (NaN loss) before a value
    epochs_run: int = 0
    seconds: float = 0.0
    promoted: bool = False
    why: str = ""  # why it went on, or where and why it stopped
    reused: bool = False

    @property
    def label(self) -> str:
        return candidate_label(self.lr_method, self.lr_factor)


class LRSweep(BaseModel):
    """One range test's curve, every method's suggestion, the LR chosen from them, and
    the bracket's rungs around it (empty without a bracket)."""

    batch_size: int
    lrs: list[float]
    losses: list[float | None]
    smoothed: list[float | None]
    suggestions: dict[str, float | None]
    notes: dict[str, str]
    chosen_lr: float
    method: LRMethod
    steps: int
    stop_reason: str
    seconds: float
    path: str | None = None  # folder holding the saved JSON and PNG, once stored
    reused: bool = False  # read from the store, not run now
    rungs: list[RungResult] = []

    def trial_lr(self, center: float = 1.0) -> tuple[float, float]:
        """The full trial's peak LR and its factor: the last rung's promoted candidate,
        else (no bracket, or every rung failed) the bracket's ``center`` times the
        chosen suggestion."""
        if promoted := [r for r in self.rungs if r.promoted]:
            last = max(promoted, key=lambda r: r.rung)
            return last.lr, last.lr_factor
        return self.chosen_lr * center, center


PromotePolicy = Literal["gate", "always", "never"]


class Promotion(BaseModel):
    """The champion gate's decision (`tasks.runs.champion`): whether ``latest.json`` moves
    to tonight's run, both models' scores on tonight's test split, and why."""

    policy: PromotePolicy
    promoted: bool
    reason: str
    metric: str  # the test form of the monitored metric: test_accuracy, test_loss
    direction: Literal["max", "min"]
    margin: float = 0.0
    score: float | None = None  # tonight's winner
    champion: str | None = None  # the run latest.json named, if any
    champion_score: float | None = None  # None: no champion, or it could not be evaluated

    def text(self) -> str:
        """One sentence for logs, reports and the command line."""
        verdict = "promoted" if self.promoted else "not promoted"
        return f"{verdict}: {self.reason}"


# How the winner is chosen (`tasks.tuning.selection`): the best validation score, or the
# cheapest cell to train among those a paired test cannot tell from the best.
SelectRule = Literal["best", "cheapest_within_noise"]


class Selection(BaseModel):
    """How the winner was chosen: the best cell, the cells within noise of it (paired
    test on the validation examples), and why the winner won."""

    rule: SelectRule
    metric: str  # the validation column ranked: val_accuracy, val_loss
    alpha: float
    best: str  # the cell with the best score (`TrialResult.cell`)
    winner: str
    test: str | None = None  # McNemar, paired bootstrap; None: no per-example values
    p_vs_best: dict[str, float] = {}  # cell -> p of "same score as the best"
    reason: str

    def tied(self) -> list[str]:
        """The cells a paired test cannot tell from the best (the best included)."""
        return [self.best, *(c for c, p in self.p_vs_best.items() if p >= self.alpha)]


class ExportResult(BaseModel):
    """Where a run went, and whether it now serves."""

    run_id: str
    uri: str  # where the run is: file:// or s3://
    path: str  # the local folder (for S3: the cached copy that was uploaded)
    latest: str  # the target's latest.json (which names this run if it was promoted)
    promotion: Promotion | None = None


class TuneResult(BaseModel):
    """What a tune run produced: the rows, the winner, where the export went, timings."""

    run_id: str
    export: ExportResult
    winner: TrialResult
    rows: list[TrialResult]
    seconds: dict[str, float]
    monitor: str = "val_accuracy"
    selection: Selection | None = None
    sweeps_reused: int = 0  # LR sweeps read from the store (the rows say which trials)


def plural(n: int, noun: str) -> str:
    """``1 night``, ``3 nights``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


class WarmStart(BaseModel):
    """What tonight carries over from earlier nights of its setup, and why; kept in the
    manifest (where the next night reads ``setup`` and ``train_examples``)."""

    setup: str  # `setup_fingerprint`
    train_examples: int
    enabled: bool = True
    nights: list[str] = []  # the earlier nights read, oldest first
    left_out: dict[int, str] = {}  # batch size -> why it does not run tonight
    back: dict[int, str] = {}  # batch size -> why it runs again tonight
    lr_center: float | None = None  # the suggestion's multiple carried over (None: none)
    width: int | None = None  # the bracket's width tonight, where the warm start set it
    bracket_why: str = ""

    def lines(self) -> list[str]:
        """The carry-over in sentences, for the screen and the report."""
        if not self.enabled:
            return ["off: every batch size and the whole bracket run"]
        if not self.nights:
            return ["no earlier night of this dataset and model: starting wide"]
        found = [f"from {plural(len(self.nights), 'earlier night')} of this dataset and model"]
        found += [f"batch size {b} left out: {why}" for b, why in sorted(self.left_out.items())]
        found += [f"batch size {b} runs again: {why}" for b, why in sorted(self.back.items())]
        if self.bracket_why:
            found.append(self.bracket_why)
        if len(found) == 1:
            found.append("nothing to carry over: every batch size runs, the bracket as set")
        return found
