"""Every Prefect task of the flows: thin wrappers over plain library functions.

The library (`tasks/`) knows nothing of Prefect; here each step gets its name, its
``cpu`` / ``gpu`` tag (work pools and the gpu concurrency limit) and no Prefect
caching: the store (`tasks.storage.store`) keeps finished work and is the cache, so
a rerun reuses what finished whichever process or machine did it.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data.datasets import load_dataset
from tasks.preflight import preflight as check_input
from tasks.runs.export import export_run as write_export
from tasks.tuning.lr_range import stored_lr_range_test
from tasks.tuning.training import train_trial as fit_trial

preflight = task(name="preflight", tags=["cpu"], cache_policy=NO_CACHE)(check_input)
cache_dataset = task(name="cache_dataset", tags=["cpu"], cache_policy=NO_CACHE)(load_dataset)
lr_sweep = task(name="lr_sweep", tags=["gpu"], cache_policy=NO_CACHE)(stored_lr_range_test)
train_trial = task(name="train_trial", tags=["gpu"], cache_policy=NO_CACHE)(fit_trial)
export_run = task(name="export_run", tags=["cpu"], cache_policy=NO_CACHE)(write_export)
