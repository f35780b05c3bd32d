"""Create (or update) nighttune's work pools and the `gpu` tag concurrency limit.

    .venv/bin/python deployments/pools.py [--gpu-slots N]
    .venv/bin/python deployments/pools.py --check     # only: is there a server that takes
                                                      # our PREFECT_API_AUTH_STRING? (make
                                                      # deploy, make worker-cpu/gpu, Docker)

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
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

from nighttune.flows.server import api_problem

POOLS = {"cpu": "Dataset caching and the tune flow itself", "gpu": "LR sweeps and trials"}


def server_problem() -> str | None:
    """Why there is no Prefect server to talk to, or why it refuses this client's
    PREFECT_API_AUTH_STRING (one line), or None."""
    return api_problem(PREFECT_API_URL.value(), PREFECT_API_AUTH_STRING.value())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-slots", type=int, default=1, help="gpu-tagged task runs at once")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check that the Prefect server answers and takes PREFECT_API_AUTH_STRING",
    )
    args = parser.parse_args()
    if problem := server_problem():
        print(problem, file=sys.stderr)
        return 2
    if args.check:
        return 0
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
