"""A batch size's bracket fitted on digits: each candidate a whole schedule over its
rung, the best promoted to the trial, every rung kept in the store."""

from __future__ import annotations

import pytest

from nighttune.tasks.core.config import LRBracketSpec, TuneConfig
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.tuning import loops
from nighttune.tasks.tuning.context import trial_context
from nighttune.tasks.tuning.halving import run_bracket
from nighttune.tasks.tuning.lr_range import stored_lr_range_test
from nighttune.tasks.tuning.schedules import END_DIVISOR


def test_each_candidate_anneals_within_its_rung_and_the_best_goes_on(
    digits: CachedDataset, tmp_path, monkeypatch
) -> None:
    cache = str(tmp_path / "cache")
    config = TuneConfig(
        batch_sizes=(32,),
        patiences=(2,),
        max_epochs=6,
        cache_dir=cache,
        lr_bracket=LRBracketSpec(width=3, factor=3.0, first_rung=2),
    )
    run = trial_context(config, digits)
    sweep = stored_lr_range_test(digits, config.model, 32, spec=config.lr_range, cache_dir=cache)
    fits: list[tuple[int, float]] = []  # (epochs, the rate at the end of the fit)
    real = loops.fit_trial

    def recording(model, batch_size, data, **kwargs):
        done = real(model, batch_size, data, **kwargs)
        fits.append((kwargs["epochs"], float(model.optimizer.learning_rate)))
        return done

    monkeypatch.setattr(loops, "fit_trial", recording)
    swept = run_bracket(digits, run, sweep)

    rungs = swept.rungs
    assert [r.lr_factor for r in rungs] == pytest.approx([1.0, 1 / 3, 3.0])
    assert [r.lr for r in rungs] == pytest.approx([sweep.chosen_lr * r.lr_factor for r in rungs])
    assert [epochs for epochs, _ in fits] == [2, 2, 2]
    for rung, (_, end_rate) in zip(rungs, fits, strict=True):
        # the one-cycle schedule ran whole within the rung: annealed at its end
        assert end_rate == pytest.approx(rung.lr / END_DIVISOR, rel=0.05)
        assert rung.value is not None and 0.0 < rung.value <= 1.0
        assert rung.epochs_run == 2 and not rung.reused
    best = max(rungs, key=lambda r: r.value or 0.0)
    assert [r.promoted for r in rungs] == [r is best for r in rungs]
    assert best.why.startswith("1st of 3 after 2 epochs") and best.why.endswith("went on")
    assert swept.trial_lr() == (best.lr, best.lr_factor)

    fits.clear()
    again = run_bracket(digits, run, sweep)
    assert fits == []  # every rung read back from the store
    assert all(r.reused for r in again.rungs)
    assert again.trial_lr() == swept.trial_lr()


def test_a_bracket_of_one_fits_nothing(digits: CachedDataset, tmp_path, monkeypatch) -> None:
    cache = str(tmp_path / "cache")
    config = TuneConfig(max_epochs=6, cache_dir=cache, lr_bracket=LRBracketSpec(width=1))
    sweep = stored_lr_range_test(digits, config.model, 64, spec=config.lr_range, cache_dir=cache)
    monkeypatch.setattr(loops, "fit_trial", lambda *a, **k: pytest.fail("a rung was fitted"))
    swept = run_bracket(digits, trial_context(config, digits), sweep)
    assert swept.rungs == [] and swept.trial_lr() == (sweep.chosen_lr, 1.0)
