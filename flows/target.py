"""The edge where the export target is made: once a run, from its configuration."""

from __future__ import annotations

from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.storage.target import Target, make_target


def export_target(config: TuneConfig) -> Target:
    """The `Target` ``config.export_to`` names, through ``config.s3_endpoint_url``, with
    copies of a bucket's folders kept in ``config.cache_dir``."""
    return make_target(config.export_to, config.s3_endpoint_url, cache_dir=config.cache_dir)
