"""Trials fanned out to train-trial deployment runs (Prefect's client)."""
