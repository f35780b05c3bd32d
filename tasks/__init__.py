"""nighttune's units of work: plain functions first, thin Prefect tasks on top."""
