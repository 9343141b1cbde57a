# One image for every role; the command picks it:
#   API         (default CMD)  gunicorn -c deploy/gunicorn.conf.py wsgi:app
#   worker      celery -A celery_worker worker -Q events,notifications,jobs
#   beat        celery -A celery_worker beat --schedule /tmp/celerybeat-schedule
#   migrations  flask db upgrade
ARG PYTHON_IMAGE=python:3.12-slim

# ---- builder: every dependency installed into a virtualenv that the final stage copies whole.
# All of requirements.txt ships binary wheels (psycopg2-binary, argon2-cffi, cryptography), so no
# compiler is needed even here; a dependency that must compile would get build-essential in this
# stage only, never in the final one.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt requirements-observability.txt /tmp/
# The optional Sentry/OpenTelemetry packages ship too (~20 MB), so setting SENTRY_DSN or
# OTEL_EXPORTER_OTLP_ENDPOINT is enough to turn them on.
RUN /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt \
        --requirement /tmp/requirements-observability.txt \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---- final: the interpreter, the virtualenv and the code; nothing to build with.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    APP_ENV=production \
    FLASK_APP=wsgi \
    PORT=8000 \
    HOME=/tmp
# A fixed numeric uid/gid so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# Home is /tmp, the one writable place when the root filesystem is read-only (gunicorn puts its
# control socket under $HOME/.gunicorn).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# The code stays owned by root: the app user can read it but never rewrite it.
COPY . .
# Bytecode compiled now, as root: at run time the code is read-only (PYTHONDONTWRITEBYTECODE).
RUN python -m compileall -q app migrations wsgi.py celery_worker.py
USER 10001:10001
EXPOSE 8000
# Liveness only (no dependency checked), as an orchestrator's liveness probe would; urllib
# because the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
