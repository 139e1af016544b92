# DigitOps MLflow tracking server and model registry: SQLite and artifacts under /mlruns,
# which compose bind-mounts from ./mlruns, or PostgreSQL and an S3 bucket (k8s/, the compose
# `stores` profile). Its packages are pyproject.toml's tracking-server extra, whose mlflow pin
# is training's, so server and client always agree.
#   docker build --network host -f docker/mlflow.Dockerfile -t digitops-mlflow .
#   docker run --rm --network host -v "$PWD/mlruns:/mlruns" digitops-mlflow
# The cache mounts need BuildKit: on by default since Docker 23; with docker-compose 1.x,
# export DOCKER_BUILDKIT=1 first.

# Only the lists this image needs leave this stage, so an edit to pyproject.toml that
# leaves them alone rebuilds nothing below. constraints.txt (the full pin list) is optional:
# an empty one stands in when the repository has none.
FROM python:3.11-slim-bookworm AS requirements
WORKDIR /src
COPY pyproject.toml constraints.tx[t] docker/requirements.py ./
RUN mkdir /requirements && touch constraints.txt && cp constraints.txt /requirements/ \
 && python requirements.py tracking-server >/requirements/rest.txt

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# A virtualenv without pip: the base image's pip fills it, and nothing that builds or
# installs packages is copied into the final image.
RUN python -m venv --without-pip /opt/venv
COPY --from=requirements /requirements/rest.txt /requirements/constraints.txt /requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip --python /opt/venv/bin/python install -r /requirements/rest.txt -c /requirements/constraints.txt

FROM python:3.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --non-unique --gid "${APP_GID}" app \
 && useradd --non-unique --uid "${APP_UID}" --gid "${APP_GID}" --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /mlruns \
 && chown "${APP_UID}:${APP_GID}" /mlruns
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WRITABLE_DIRS=/mlruns
COPY docker/writable-entrypoint.sh /usr/local/bin/
WORKDIR /mlruns
USER ${APP_UID}:${APP_GID}
EXPOSE 5000
# /health is exempt from MLflow's Host-header check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
# Stops at once, naming APP_UID/APP_GID, when ./mlruns is not writable by the container's uid.
ENTRYPOINT ["writable-entrypoint.sh", "mlflow"]
# --allowed-hosts: MLflow refuses Host headers it does not know; these are compose's service
# name and what a browser on the host sends.
CMD ["server", "--backend-store-uri", "sqlite:////mlruns/mlflow.db", \
     "--artifacts-destination", "/mlruns/artifacts", "--host", "0.0.0.0", "--port", "5000", \
     "--workers", "1", "--allowed-hosts", "mlflow,mlflow:*,localhost,localhost:*,127.0.0.1,127.0.0.1:*"]
ARG GIT_COMMIT=""
LABEL org.opencontainers.image.title="digitops-mlflow" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
