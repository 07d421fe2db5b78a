# driftwatch container image.
#
#   docker build -t driftwatch .                       # or: podman build --format docker ...
#   docker run --read-only -v dw-state:/var/lib/driftwatch \
#       -v ./config.toml:/etc/driftwatch/config.toml:ro -p 9108:9108 driftwatch
#
# Two stages: the build stage installs driftwatch and its dependencies into a
# virtual environment (/opt/driftwatch); the runtime stage copies only that venv
# onto the same base.  The process runs as uid/gid 10001 (non-root) and writes
# only to /var/lib/driftwatch (a volume: SQLite state, file receivers' output)
# and /tmp, so the root filesystem can be read-only.  See docs/deploy.md.
#
# Build arguments:
#   BASE_IMAGE   any Debian-like image with python3 (>= 3.11) and its venv module
#   PIP_OPTIONS  extra pip options, e.g. "--no-index --find-links=/wheelhouse"
#                to install from the wheels put in ./wheelhouse (offline builds:
#                pip wheel --wheel-dir wheelhouse '.[postgres]' 'setuptools>=68')
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml ./
COPY wheelhouse/ /wheelhouse/
# The dependencies first, from pyproject.toml alone: this layer is reused for as
# long as they do not change, whatever happens to the source.
# PIP_OPTIONS is split into options on purpose.
# hadolint ignore=SC2086
RUN python3 -m venv /opt/driftwatch \
    && python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > /tmp/requirements.txt \
    && /opt/driftwatch/bin/pip install --no-cache-dir ${PIP_OPTIONS} -r /tmp/requirements.txt
COPY README.md ./
COPY monitor/ monitor/
COPY alerts/ alerts/
COPY detectors/ detectors/
# hadolint ignore=SC2086
RUN /opt/driftwatch/bin/pip install --no-cache-dir --no-deps ${PIP_OPTIONS} . \
    && /opt/driftwatch/bin/pip check \
    && /opt/driftwatch/bin/driftwatch --help > /dev/null

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="driftwatch" \
      org.opencontainers.image.description="Model-monitoring daemon: drift, regressions and broken feeds, routed to the team that owns them"
RUN groupadd --gid 10001 driftwatch \
    && useradd --uid 10001 --gid driftwatch --no-create-home \
       --home-dir /var/lib/driftwatch --shell /usr/sbin/nologin driftwatch \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/driftwatch
COPY --from=build /opt/driftwatch /opt/driftwatch
COPY deploy/container/config.toml /etc/driftwatch/config.toml
ENV PATH=/opt/driftwatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DRIFTWATCH_HEALTHZ_URL=http://127.0.0.1:9108/healthz
WORKDIR /var/lib/driftwatch
VOLUME ["/var/lib/driftwatch"]
USER 10001:10001
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/driftwatch/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['DRIFTWATCH_HEALTHZ_URL'], timeout=4)"]
ENTRYPOINT ["driftwatch"]
CMD ["run", "--config", "/etc/driftwatch/config.toml"]
