# syntax=docker/dockerfile:1
# The ModelRatchet operator image. Its packages are exactly requirements.lock, each file checked against the
# lock's hashes (hack/lock-requirements.sh writes it, the test suite runs against the same pins); the project
# is built without fetching anything, and the runtime image has neither pip nor setuptools.
#   docker build -t ghcr.io/modelratchet/modelratchet:0.1.0 .
# The base image is pinned by digest (the multi-arch index of python:3.11-slim-bookworm). To move it:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # the "Digest:" line
# and update the default below, or pass --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The build backend (setuptools, wheel) comes from the dev lock, hash-checked, into a venv of its own.
COPY requirements.lock requirements-dev.lock ./
COPY hack/lockfile.py hack/
RUN python -m venv /opt/build \
    && python hack/lockfile.py select requirements-dev.lock setuptools wheel > build.lock \
    && /opt/build/bin/pip install --require-hashes --no-deps --only-binary=:all: -r build.lock
# The runtime venv is made without pip; the build venv's pip installs into it (`pip --python`).
# Dependencies first: this layer is reused until the lock changes.
RUN python -m venv --without-pip /opt/modelratchet \
    && /opt/build/bin/pip --python /opt/modelratchet/bin/python install \
       --require-hashes --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && /opt/build/bin/pip --python /opt/modelratchet/bin/python install --no-deps /tmp/wheels/modelratchet-*.whl \
    && /opt/build/bin/pip --python /opt/modelratchet/bin/python check \
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
# Only the runtime venv: no pip, no setuptools, no build venv; and the base image's own installers go too.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel
COPY --from=build /opt/modelratchet /opt/modelratchet
# Bytecode is compiled at build time; the root filesystem is read-only at run time.
ENV PATH=/opt/modelratchet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["modelratchet", "run"]
CMD ["--liveness", "http://0.0.0.0:8081/healthz"]
