"""nighttune's Prefect flows and the `nighttune` command line."""
