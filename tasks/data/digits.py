"""`digits`: a TFDS dataset over scikit-learn's bundled 8x8 handwritten digits.

It needs no network, so it is the offline default: every command and test runs
on it. Importing this module registers the builder with TFDS under ``digits``.
The 1,797 images are split 70/15/15 into train, validation and test with a fixed
seed, so the splits are the same on every machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 20260101
SPLIT_SHARES = {"train": 0.70, "validation": 0.15, "test": 0.15}


def split_indices(n: int) -> dict[str, np.ndarray]:
    """Seeded, disjoint, sorted index sets for train / validation / test."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_val = round(n * SPLIT_SHARES["validation"])
    n_test = round(n * SPLIT_SHARES["test"])
    return {
        "validation": np.sort(order[:n_val]),
        "test": np.sort(order[n_val : n_val + n_test]),
        "train": np.sort(order[n_val + n_test :]),
    }


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits (UCI ML), 8x8 grayscale, 10 classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Seeded 70/15/15 train/validation/test split."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "1,797 8x8 grayscale handwritten digits bundled with scikit-learn, "
                "rescaled from 0..16 to 0..255."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html",
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, dict]]]:
        del dl_manager  # bundled with scikit-learn: nothing to download
        return {name: self._generate_examples(idx) for name, idx in split_indices(1797).items()}

    def _generate_examples(self, indices: np.ndarray) -> Iterator[tuple[int, dict]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # 0..16 -> 0..255 so the shared uint8 -> [0, 1] preprocessing applies unchanged.
        images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
        for i in indices:
            yield int(i), {"image": images[i], "label": int(digits.target[i])}
