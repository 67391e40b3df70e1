# syntax=docker/dockerfile:1
# The ModelRatchet operator image. Dependencies come from requirements.lock (hack/lock-requirements.sh),
# installed with --no-deps so nothing is resolved at build time beyond what the tests ran against.
#   docker build -t ghcr.io/modelratchet/modelratchet:0.1.0 .
# Pin the base by digest for reproducible builds: --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/modelratchet
WORKDIR /src
# Dependencies first: this layer is reused until the lock changes.
COPY requirements.lock ./
RUN /opt/modelratchet/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/modelratchet/bin/pip install --no-deps . \
    && /opt/modelratchet/bin/pip check \
    && /opt/modelratchet/bin/python -m compileall -q /opt/modelratchet

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelratchet" \
      org.opencontainers.image.description="Kubernetes operator that rolls ML model checkpoints out as canaries judged from Prometheus" \
      org.opencontainers.image.source="https://github.com/modelratchet/modelratchet" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric UID/GID matching the Helm chart's securityContext (runAsUser 10001).
RUN groupadd --system --gid 10001 modelratchet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin modelratchet
COPY --from=build /opt/modelratchet /opt/modelratchet
# Bytecode is compiled at build time; the root filesystem is read-only at run time.
ENV PATH=/opt/modelratchet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["modelratchet", "run"]
CMD ["--liveness", "http://0.0.0.0:8081/healthz"]
