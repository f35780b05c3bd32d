"""Create (or update) nighttune's work pools and the `gpu` tag concurrency limit.

    .venv/bin/python deployments/pools.py [--gpu-slots N]

Idempotent: run it as often as you like. Pools ``cpu`` and ``gpu`` are process
pools; ``gpu`` task runs are limited to N at a time across all workers (default 1:
one per GPU worker; raise it when you add GPU workers).
"""

from __future__ import annotations

import argparse
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import PREFECT_API_URL

POOLS = {"cpu": "Dataset caching and the tune flow itself", "gpu": "LR sweeps and trials"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-slots", type=int, default=1, help="gpu-tagged task runs at once")
    args = parser.parse_args()
    if not PREFECT_API_URL.value():
        print("pools: set PREFECT_API_URL to your Prefect server first "
              "(e.g. http://127.0.0.1:4200/api)", file=sys.stderr)
        return 2
    with get_client(sync_client=True) as client:
        for name, description in POOLS.items():
            try:
                client.create_work_pool(
                    WorkPoolCreate(name=name, type="process", description=description)
                )
                print(f"pools: created work pool {name}")
            except ObjectAlreadyExists:
                print(f"pools: work pool {name} exists")
        client.create_concurrency_limit(tag="gpu", concurrency_limit=args.gpu_slots)
        print(f"pools: at most {args.gpu_slots} gpu-tagged task run(s) at a time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
