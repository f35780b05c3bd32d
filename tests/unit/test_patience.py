"""Patience stop points on made-up monitor histories, checked against Keras's rule."""

from __future__ import annotations

import math

import pytest

from nighttune.tasks.tuning.patience import PatienceLedger, Stop, patience_stops


def test_stops_and_best_epochs_for_each_patience() -> None:
    #        epoch: 0    1    2    3    4    5    6    7    8
    values = [0.5, 0.6, 0.7, 0.7, 0.65, 0.8, 0.79, 0.78, 0.77]
    stops = patience_stops(values, [1, 2, 3, 10])
    assert stops[1] == Stop(1, stop_epoch=3, best_epoch=2)  # 0.7 repeated is no improvement
    assert stops[2] == Stop(2, stop_epoch=4, best_epoch=2)
    assert stops[3] == Stop(3, stop_epoch=8, best_epoch=5)
    assert stops[10] == Stop(10, stop_epoch=None, best_epoch=5)  # ran out of epochs


def test_min_mode_and_min_delta() -> None:
    losses = [1.0, 0.95, 0.949, 0.948, 0.5, 0.49]
    assert patience_stops(losses, [2], "min", min_delta=0.01)[2] == Stop(2, 3, 1)
    assert patience_stops(losses, [2], "min", min_delta=0.0)[2] == Stop(2, None, 5)


def test_nan_never_improves_and_first_epoch_counts_as_best() -> None:
    stops = patience_stops([math.nan, math.nan, math.nan], [1])
    assert stops[1] == Stop(1, stop_epoch=1, best_epoch=0)


def test_no_stop_at_epoch_zero() -> None:
    ledger = PatienceLedger([1])
    keep, stopping = ledger.update(0, 0.5)
    assert keep and stopping == []


def test_ledger_is_done_when_the_largest_patience_stops() -> None:
    ledger = PatienceLedger([1, 3])
    results = [ledger.update(e, v) for e, v in enumerate([0.9, 0.8, 0.8, 0.8])]
    assert [r[1] for r in results] == [[], [1], [], [3]]
    assert ledger.done


@pytest.mark.parametrize("patience", [1, 2, 3, 5])
def test_matches_keras_early_stopping(patience: int) -> None:
    import keras
    import numpy as np

    values = [0.2, 0.4, 0.4, 0.3, 0.5, 0.45, 0.44, 0.5, 0.43, 0.42, 0.41, 0.6, 0.1]

    class Replay(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_accuracy"] = values[epoch]

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    stopper = keras.callbacks.EarlyStopping("val_accuracy", patience=patience, mode="max")
    history = model.fit(
        np.zeros((4, 1)), np.zeros(4), epochs=len(values), verbose=0, callbacks=[Replay(), stopper]
    )
    ours = patience_stops(values, [patience])[patience]
    ran = len(history.history["loss"])
    assert (ours.stop_epoch + 1 if ours.stop_epoch is not None else len(values)) == ran
    assert ours.best_epoch == stopper.best_epoch
