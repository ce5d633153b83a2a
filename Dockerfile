# syntax=docker/dockerfile:1
# heritage-audio container image: the API by default; the same image runs the worker
# (`heritage-audio worker`), the capture daemon (`heritage-audio daemon`, with /dev/snd) and
# migrations (`heritage-audio db upgrade`). See docker-compose.yml.
#   docker build -t heritage-audio .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the application and its dependencies in a virtual environment ---------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/heritage-audio/venv
WORKDIR /src
# .dockerignore keeps tests, benchmarks, docs, tools and local state out of the context.
COPY . .
RUN /opt/heritage-audio/venv/bin/pip install --no-deps --upgrade "pip>=24" \
    && /opt/heritage-audio/venv/bin/pip install . \
    && /opt/heritage-audio/venv/bin/heritage-audio --help >/dev/null

# --- runtime: the virtual environment, PortAudio and libsndfile, a non-root user ---------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="heritage-audio" \
      org.opencontainers.image.description="Real-time audio analysis for museums, exhibitions and sound archives" \
      org.opencontainers.image.licenses="Apache-2.0"
# PortAudio for capture (the daemon); libsndfile for reading uploads. Versions follow the
# base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libportaudio2 libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
# uid 10001, in group audio (gid 29 on Debian and Ubuntu hosts) for /dev/snd.
RUN groupadd --system --gid 10001 heritage \
    && useradd --system --uid 10001 --gid heritage --groups audio --no-create-home \
       --home-dir /var/lib/heritage-audio --shell /usr/sbin/nologin heritage \
    && install -d -o heritage -g heritage -m 0750 /var/lib/heritage-audio /var/lib/heritage-audio/maxxi
COPY --from=build /opt/heritage-audio/venv /opt/heritage-audio/venv
# The root file system may be read-only (compose): numba (librosa) caches in /tmp.
ENV PATH=/opt/heritage-audio/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json \
    HERITAGE_DATA_DIR=/var/lib/heritage-audio \
    MAXXI_OUTPUT_DIR=/var/lib/heritage-audio/maxxi \
    NUMBA_CACHE_DIR=/tmp/numba-cache
WORKDIR /var/lib/heritage-audio
VOLUME ["/var/lib/heritage-audio"]
USER 10001:10001
EXPOSE 8000
# Liveness only (is the process serving?); /health/ready also checks the database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["heritage-audio", "api"]
