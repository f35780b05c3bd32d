# nighttune worker image. CPU by default; GPU with --build-arg TF_EXTRA=gpu
# (TensorFlow with CUDA from pip; run it with the NVIDIA container toolkit).
#   docker build -t nighttune-worker .
#   docker build -t nighttune-worker:gpu --build-arg TF_EXTRA=gpu .
#   docker run -e PREFECT_API_URL=http://server:4200/api -e NIGHTTUNE_POOL=gpu \
#              --env-file /etc/nighttune/worker.env \
#              -v /shared/exports:/shared/exports nighttune-worker:gpu
# The flows come from the installed nighttune package; NIGHTTUNE_CODE_DIR (/app) is the
# workers' working directory, where user builders named by a relative code_dir are found.
FROM python:3.11-slim

ARG TF_EXTRA=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    NIGHTTUNE_POOL=cpu \
    NIGHTTUNE_CODE_DIR=/app

RUN groupadd --system --gid 10001 nighttune \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/nighttune nighttune

WORKDIR /app
COPY pyproject.toml README.md ./
COPY flows/ flows/
COPY tasks/ tasks/
COPY deployments/ deployments/
COPY examples/ examples/
# The project itself, whose dependency pins live in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[${TF_EXTRA}]"

USER 10001:10001
# The worker polls the pool named by NIGHTTUNE_POOL (cpu or gpu) on PREFECT_API_URL, with
# PREFECT_API_AUTH_STRING (docker run --env-file, never -e on a shared machine: `ps` shows
# it) when the server asks for one; a server that is down or refuses it is one line first.
# deployments/service.py: `docker stop` (SIGTERM) ends the worker and its flow runs at once.
CMD ["sh", "-c", "python deployments/pools.py --check && exec python deployments/service.py -- prefect worker start --pool \"$NIGHTTUNE_POOL\""]
