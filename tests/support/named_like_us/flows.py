"""A user's data builder in a module named `flows`."""

import data


def blobs(n=300, seed=0):
    """Three separable classes of feature vectors, from the user's own `data` module."""
    return data.blobs(n, seed)
