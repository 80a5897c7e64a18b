# syntax=docker/dockerfile:1
# One image for every Duoyou service; the command picks the service:
#   docker run duoyou services.entry.service:EntryService
# (module:Class, so nameko starts exactly that class whatever else the module imports)
# The seed job overrides the entrypoint: python -m services.booking.seed demo

# --- builder: wheels into a virtual environment (compilers stay here) -------
FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Requirements first: the dependency layer is rebuilt only when they change.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --upgrade pip==26.3 setuptools==81.0.0 wheel==0.48.0 \
 && pip install -r /tmp/requirements.txt

# --- runtime: slim, no compilers, no root ----------------------------------
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WEB_SERVER_ADDRESS=0.0.0.0:8000
RUN groupadd --system --gid 10001 duoyou \
 && useradd --system --uid 10001 --gid duoyou --no-create-home --home-dir /app duoyou
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root config.yml ./
COPY --chown=root:root shared ./shared
COPY --chown=root:root services ./services
# The code is owned by root and read-only to the service user: a compromised
# worker cannot rewrite it (and k8s mounts the root filesystem read-only).
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status == 200 else 1)"]
# Exec form: nameko is PID 1 and receives SIGTERM itself, so it stops taking
# work, lets running workers finish and closes its connections.
ENTRYPOINT ["nameko", "run", "--config", "config.yml"]
CMD ["services.booking.service:BookingService"]
