"""Datasets: sources (TFDS, folders, digits), image files, the preprocessed cache."""
