# resp-kv: one node per container. Configure with RESP_KV_* environment variables (every flag of
# `resp-kv --help` has one); docker-compose.yml runs a 3-node cluster.
# Build stage: the wheel, with the hot modules compiled by mypyc (setup.py), needs a C compiler;
# the image that runs it does not.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY resp_kv ./resp_kv
COPY cluster ./cluster
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 resp-kv \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home resp-kv \
    && mkdir -p /data \
    && chown resp-kv:resp-kv /data

ENV RESP_KV_BIND=0.0.0.0 \
    RESP_KV_PORT=6379 \
    RESP_KV_PEER_PORT=16379 \
    RESP_KV_DATA_DIR=/data \
    RESP_KV_FSYNC=everysec

VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 6379 16379

# Healthy = the client port answers PING (+PONG, or -NOAUTH when --requirepass is set).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, socket; s = socket.create_connection(('127.0.0.1', int(os.environ.get('RESP_KV_PORT', '6379'))), 2); s.sendall(b'PING\\r\\n'); r = s.recv(64); raise SystemExit(0 if r.startswith((b'+PONG', b'-NOAUTH')) else 1)"]

ENTRYPOINT ["resp-kv"]
