# syntax=docker/dockerfile:1
# One image for every streamrec process: the entrypoint is the `streamrec` command, so the
# connector, the API, the worker and the one-shot `init` differ only in their arguments
# (`docker run IMAGE connector`, `... api`, `... worker`, `... init`). docs/deploy.md.

# Build stage: install the package and its dependencies into a virtualenv. Every dependency
# ships manylinux wheels for CPython 3.11, so no compiler or apt package is needed here.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/streamrec
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY worker ./worker
COPY schemas ./schemas
RUN /opt/streamrec/bin/pip install --no-cache-dir '.[all]' \
    && /opt/streamrec/bin/python -m compileall -q /opt/streamrec/lib

# Runtime stage: the same Python base, the virtualenv and nothing else; no pip cache, no
# sources, no build tools. The root filesystem may be mounted read-only: processes write
# only under /var/lib/streamrec (faust's data folder, the working directory), the worker's
# cache in /var/cache/streamrec, and /tmp; mount volumes there (k8s/ uses emptyDirs).
FROM python:3.11.14-slim-bookworm AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" streamrec \
    && useradd --system --uid "${UID}" --gid streamrec --no-create-home \
       --home-dir /var/lib/streamrec --shell /usr/sbin/nologin streamrec \
    && mkdir -p /var/lib/streamrec /var/cache/streamrec \
    && chown streamrec:streamrec /var/lib/streamrec /var/cache/streamrec
COPY --from=build /opt/streamrec /opt/streamrec
# MALLOC_ARENA_MAX=2: glibc's per-thread malloc arenas kept the connector's peaks (a list
# refresh after each new model version, in a thread of its own) resident; measured in
# bench/soak.py: connector RSS +35.7% without it, +5.8% with it in 5 min, +16.4% in 10
# (docs/performance-log.md, Load and soak: part of the growth, not all).
ENV PATH=/opt/streamrec/bin:$PATH \
    MALLOC_ARENA_MAX=2 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMREC_WORKER_CACHE_DIR=/var/cache/streamrec
WORKDIR /var/lib/streamrec
USER 10001:10001
# 6066: the connector's /healthz /readyz /metrics; 8080: the API.
EXPOSE 6066 8080
ENTRYPOINT ["streamrec"]
CMD ["--help"]
