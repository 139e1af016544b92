# DigitOps web UI: the Flask app under gunicorn (`python -m webui`). No TensorFlow: it only
# validates drawings and proxies them to TF Serving.
#   docker build --network host -f docker/webui.Dockerfile -t digitops-webui .
#   docker run --rm --network host -e TF_SERVING_URL=http://localhost:8501 digitops-webui
# The cache mounts need BuildKit: on by default since Docker 23; with docker-compose 1.x,
# export DOCKER_BUILDKIT=1 first.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv --without-pip /opt/venv
COPY pyproject.toml constraints.tx[t] docker/requirements.py ./
RUN --mount=type=cache,target=/root/.cache/pip \
    touch constraints.txt \
 && python requirements.py webui >requirements.txt \
 && pip --python /opt/venv/bin/python install -r requirements.txt -c constraints.txt

FROM python:3.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --non-unique --gid "${APP_GID}" app \
 && useradd --non-unique --uid "${APP_UID}" --gid "${APP_GID}" --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY contract.py ./
COPY webui/ webui/
USER ${APP_UID}:${APP_GID}
EXPOSE 8080
# Liveness only: /readyz would also fail while TF Serving is down.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["python", "-m", "webui"]
CMD ["--host", "0.0.0.0", "--port", "8080"]
ARG GIT_COMMIT=""
LABEL org.opencontainers.image.title="digitops-webui" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
