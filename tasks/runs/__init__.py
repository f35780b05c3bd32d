"""Exported runs: writing one, finding and verifying one, their documents, history."""
