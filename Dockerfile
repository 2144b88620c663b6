# falcon-ollama: a drop-in Ollama server for OpenAI-compatible upstreams, run by gunicorn (uvicorn workers).
#
#   docker build -t falcon-ollama .
#   docker run --rm -p 11434:11434 -e OPENAI_API_KEY=sk-... falcon-ollama
#
# Without OPENAI_API_KEY and OPENAI_BASE_URL the container serves the bundled fake upstream (offline demo).
# See docs/deployment.md. tests/deploy/test_container.py lints this file and runs its exact command.

ARG PYTHON_IMAGE=python:3.12-slim

# --- builder: a venv with the pinned dependencies (wheels only: no compiler anywhere) and the package ----
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# The lock first, so a code change does not reinstall the dependencies (layer cache).
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps --only-binary=:all: -r requirements.lock

# The package itself, non-editable, against exactly the locked set (--no-deps; pip check proves it is
# complete).
COPY pyproject.toml README.md ./
COPY falcon_ollama ./falcon_ollama
COPY fake_openai ./fake_openai
RUN pip install --no-cache-dir --no-deps . \
    && pip check

# --- runtime: the venv, the gunicorn configuration and the catalog; non-root -------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# The package version (falcon_ollama.__version__; tests/deploy checks they agree).
ARG VERSION=0.1.0
ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="falcon-ollama" \
      org.opencontainers.image.description="A drop-in Ollama server that serves OpenAI (and any OpenAI-compatible) models" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed numeric uid/gid, so Kubernetes can verify runAsNonRoot and volumes can be owned in advance.
RUN groupadd --system --gid 10001 falcon \
    && useradd --system --uid 10001 --gid falcon --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin falcon \
    && mkdir -p /var/log/falcon-ollama \
    && chown falcon:falcon /var/log/falcon-ollama

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY gunicorn.conf.py ./
COPY conf/ ./conf/

# A container must listen on every interface (the default 127.0.0.1 is unreachable from outside it).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OLLAMA_HOST=0.0.0.0:11434 \
    FALCON_OLLAMA_CATALOG=/app/conf/models.toml

USER 10001:10001

EXPOSE 11434

# Liveness, without curl: the port is read from OLLAMA_HOST the way the server reads it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; from falcon_ollama.settings import parse_ollama_host; b = parse_ollama_host(os.environ.get('OLLAMA_HOST')); h = '127.0.0.1' if b.host in ('', '0.0.0.0', '::') else b.host; h = '[' + h + ']' if ':' in h else h; urllib.request.urlopen(f'http://{h}:{b.port}/health', timeout=3)"]

# gunicorn is PID 1: SIGTERM (docker stop, Kubernetes) starts its graceful shutdown, in-flight streams get
# FALCON_OLLAMA_GRACEFUL_TIMEOUT seconds (default 120) to finish.
ENTRYPOINT ["gunicorn", "-c", "/app/gunicorn.conf.py"]
