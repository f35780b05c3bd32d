"""Every environment variable the library reads (and the one it writes), here only.

`current()` reads them afresh (cheap: a dozen lookups), so a process that changes
its environment — a test, a worker started with other variables — is seen as it is
now; everything else takes the values from the `Settings` it returns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel


class Settings(BaseModel):
    """The machine's settings, as the environment gives them."""

    cache_dir: Path  # NIGHTTUNE_CACHE_DIR, else $XDG_CACHE_HOME/nighttune, ~/.cache/nighttune
    s3_timeout_s: float = 20.0  # NIGHTTUNE_S3_TIMEOUT: connect and read, per attempt
    s3_attempts: int = 5  # NIGHTTUNE_S3_ATTEMPTS: botocore standard retries
    s3_endpoint: tuple[str, str] | None = None  # (variable, URL) botocore would use
    network_probe: str = "storage.googleapis.com:443"  # NIGHTTUNE_NETWORK_PROBE
    https_proxy: str | None = None  # HTTPS_PROXY / https_proxy
    tfds_data_dir: str | None = None  # TFDS_DATA_DIR (shown in messages; TFDS reads it)
    require_gpu: bool = False  # NIGHTTUNE_REQUIRE_GPU=1 on a worker


# Where botocore finds an endpoint when none is passed (the S3-specific one first).
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def current() -> Settings:
    """The settings the environment gives now."""
    env = os.environ
    if cache := env.get("NIGHTTUNE_CACHE_DIR"):
        cache_dir = Path(cache).expanduser().resolve()
    else:
        xdg = env.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache_dir = Path(xdg).expanduser().resolve() / "nighttune"
    endpoint = next(((name, env[name]) for name in ENDPOINT_VARIABLES if env.get(name)), None)
    return Settings(
        cache_dir=cache_dir,
        s3_timeout_s=float(env.get("NIGHTTUNE_S3_TIMEOUT", "20")),
        s3_attempts=int(env.get("NIGHTTUNE_S3_ATTEMPTS", "5")),
        s3_endpoint=endpoint,
        network_probe=env.get("NIGHTTUNE_NETWORK_PROBE", "storage.googleapis.com:443"),
        https_proxy=env.get("HTTPS_PROXY") or env.get("https_proxy"),
        tfds_data_dir=env.get("TFDS_DATA_DIR"),
        require_gpu=env.get("NIGHTTUNE_REQUIRE_GPU") == "1",
    )


def environment() -> Mapping[str, str]:
    """This process's environment, for a value a config names by reference (a webhook's
    ``env:NAME``): read on the machine that runs the flow, never passed as a parameter."""
    return os.environ


# XLA's CPU scheduler "optimized for concurrency" runs a step's independent kernels
# side by side on the thread pool. A trial step's extra kernels are tiny (Adam updates
# each weight, bias and moment separately), and dispatching them that way costs more
# than it gains: a trial epoch took a median 1.13-1.15x the time of its GEMMs alone
# with it turned off vs 1.32-1.39x with it on, XLA's CPU default (bench/xla_flags.py,
# 18 process pairs; lower in 12 of them, README "Performance").
XLA_CPU_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)


def use_xla_cpu_flags() -> None:
    """Add `XLA_CPU_FLAGS` to ``XLA_FLAGS``, except flags the environment already sets.

    XLA reads ``XLA_FLAGS`` once, at the process's first XLA compile: call this before.
    """
    flags = os.environ.get("XLA_FLAGS", "").split()
    names = {flag.split("=")[0] for flag in flags}
    flags += [flag for flag in XLA_CPU_FLAGS if flag.split("=")[0] not in names]
    os.environ["XLA_FLAGS"] = " ".join(flags)
