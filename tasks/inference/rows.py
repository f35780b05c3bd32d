"""One CSV row per image file or example: a prediction or an error.

A classifier's columns: ``path,label,confidence,error``; with top-k
``label_2,confidence_2,...`` come before ``error``. A regression's (`ValueRow`):
``path,value,error``, or ``value_1,...,value_n`` for n outputs.
"""

from __future__ import annotations

from typing import NamedTuple


class PredictionRow(NamedTuple):
    """A file's row: its ``k`` best labels and confidences (best first), or an error."""

    path: str
    labels: tuple[str, ...] = ()
    confidences: tuple[str, ...] = ()  # formatted, six decimals
    error: str = ""

    @classmethod
    def failed(cls, path: str, error: str) -> PredictionRow:
        return cls(path, error=error)

    def cells(self, k: int) -> list[str]:
        """The row as CSV cells for a ``k``-label header (an error row: empty labels)."""
        labels = self.labels or ("",) * k
        confidences = self.confidences or ("",) * k
        cells = [self.path]
        for label, confidence in zip(labels, confidences, strict=True):
            cells += [label, confidence]
        return [*cells, self.error]


def header(k: int) -> list[str]:
    extra = [f"{name}_{i}" for i in range(2, k + 1) for name in ("label", "confidence")]
    return ["path", "label", "confidence", *extra, "error"]  # the error last, as for values


class ValueRow(NamedTuple):
    """An example's row from a regression: its output values, or an error."""

    path: str
    values: tuple[str, ...] = ()  # formatted, %.6g
    error: str = ""

    @classmethod
    def failed(cls, path: str, error: str) -> ValueRow:
        return cls(path, error=error)

    def cells(self, n: int) -> list[str]:
        """The row as CSV cells for an ``n``-value header (an error row: empty values)."""
        return [self.path, *(self.values or ("",) * n), self.error]


def value_header(n: int) -> list[str]:
    return ["path", *(["value"] if n == 1 else [f"value_{i}" for i in range(1, n + 1)]), "error"]
