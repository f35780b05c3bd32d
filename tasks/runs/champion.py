"""The champion gate: ``latest.json`` moves to tonight's run only if it is not worse.

The champion is the run a target's ``latest.json`` names: the model in service. Before
the pointer moves, the champion is loaded (verified, as `predict` loads it) and scored
on tonight's test split through the same pipeline and the same ``evaluate`` that scored
tonight's trials, so both numbers come from the same examples and preprocessing.
`decide` is the pure rule; `judge` gathers what it needs. A champion that cannot be
scored on tonight's data (damaged, other classes or input shape, no such metric) does
not block a run: tonight's winner is promoted and the reason says why.
"""

from __future__ import annotations

from typing import Any

from nighttune.tasks.core.errors import UserError, first_line
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.objective import Objective
from nighttune.tasks.core.records import PromotePolicy, Promotion, TrialResult
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.runs.latest import served_run_id
from nighttune.tasks.runs.manifest import LATEST
from nighttune.tasks.runs.reader import load_model_of
from nighttune.tasks.storage.target import Target
from nighttune.tasks.tuning.evaluation import evaluate_split


def decide(
    policy: PromotePolicy,
    score: float | None,
    champion_score: float | None,
    *,
    direction: str,
    margin: float,
) -> bool:
    """Whether tonight's run is promoted. Under ``gate``: when there is nothing to compare
    (no champion score, or no score tonight), or tonight's ``score`` is not worse than the
    champion's by more than ``margin`` in ``direction``."""
    if policy != "gate":
        return policy == "always"
    if score is None or champion_score is None:
        return True
    if direction == "max":
        return score >= champion_score - margin
    return score <= champion_score + margin


def judge(
    cached: CachedDataset,
    winner: TrialResult,
    *,
    objective: Objective,
    target: Target,
    policy: PromotePolicy,
    margin: float,
    code_dir: str | None,
    budget: int,
) -> Promotion:
    """The gate's decision for tonight's ``winner`` against ``target``'s champion, under
    ``policy`` (the config's ``promote``) and ``margin`` (``promote_margin``); the
    champion's model is loaded with ``code_dir``'s modules importable and evaluated under
    the memory ``budget`` (bytes)."""
    name = objective.monitor.removeprefix("val_")
    metric = f"test_{name}"
    score = winner.value(metric)
    base = Promotion(
        policy=policy,
        promoted=False,
        reason="",
        metric=metric,
        direction=objective.direction,
        margin=margin,
        score=score,
    )
    champion: str | None = None
    problem: str | None = None
    try:
        champion = served_run_id(target)
    except UserError as exc:
        problem = f"the target's {LATEST} cannot be read ({exc})"
    champion_score = None
    if champion is not None:
        champion_score, problem = _score_champion(
            target, cached, run_id=champion, name=name, code_dir=code_dir, budget=budget
        )
    promoted = decide(
        policy,
        score,
        champion_score,
        direction=objective.direction,
        margin=base.margin,
    )
    reason = _reason(
        base,
        champion=champion,
        champion_score=champion_score,
        problem=problem,
        promoted=promoted,
    )
    found = base.model_copy(
        update={
            "promoted": promoted,
            "reason": reason,
            "champion": champion,
            "champion_score": champion_score,
        }
    )
    get_logger().info("champion gate: %s", found.text())
    return found


def _score_champion(
    target: Target,
    cached: CachedDataset,
    *,
    run_id: str,
    name: str,
    code_dir: str | None,
    budget: int,
) -> tuple[float | None, str | None]:
    """(the champion's ``name`` on tonight's test split, None) or (None, why not)."""
    try:
        model, manifest = load_model_of(target, run_id, code_dir=code_dir)
    except UserError as exc:
        return None, f"champion {run_id} cannot be loaded ({exc})"
    if list(manifest.class_names) != list(cached.class_names):
        return None, (
            f"champion {run_id} was trained on other classes "
            f"({len(manifest.class_names)} vs tonight's {len(cached.class_names)})"
        )
    if tuple(manifest.input_shape) != tuple(cached.input_shape):
        shape = "x".join(map(str, manifest.input_shape))
        return None, (
            f"champion {run_id} takes inputs of {shape}, tonight's data is "
            f"{'x'.join(map(str, cached.input_shape))}"
        )
    try:
        found = _evaluate(model, cached, budget)
    except Exception as exc:  # noqa: BLE001  its model, not tonight's run: never fatal
        return None, f"champion {run_id} cannot be evaluated ({first_line(exc)[:200]})"
    if name not in found:
        return None, f"champion {run_id} does not compute {name} (it has {', '.join(found)})"
    return found[name], None


def _evaluate(model: Any, cached: CachedDataset, budget: int) -> dict[str, float]:
    """What the trials computed on the test split, computed the same way."""
    if not getattr(model, "compiled", False):
        raise ValueError("it was saved without its loss and metrics (not compiled)")
    return evaluate_split(model, cached, "test", budget=budget)


def _reason(
    base: Promotion,
    *,
    champion: str | None,
    champion_score: float | None,
    problem: str | None,
    promoted: bool,
) -> str:
    metric = base.metric.replace("_", " ")
    ours = "n/a" if base.score is None else f"{base.score:.4f}"
    if base.policy == "always":
        why = "--promote always"
    elif base.policy == "never":
        why = "--promote never"
    elif problem:
        why = problem
    elif champion is None:
        return f"no model in service yet; {metric} {ours}"
    elif base.score is None:
        why = f"tonight's winner has no {base.metric} to compare"
    else:
        worse = "not worse than" if promoted else "worse than"
        margin = f" by more than {base.margin:g}" if not promoted and base.margin else ""
        allowed = f" (margin {base.margin:g})" if promoted and base.margin else ""
        return (
            f"{metric} {ours} is {worse} champion {champion}'s {champion_score:.4f}"
            f"{margin}{allowed}"
        )
    theirs = (
        f"; champion {champion} {champion_score:.4f}"
        if champion is not None and champion_score is not None
        else ""
    )
    return f"{why}; {metric} {ours}{theirs}"
