# DigitOps web UI: the Flask app under waitress (`python -m webui`). No TensorFlow: it only
# validates drawings and proxies them to TF Serving.
#   docker build --network host -f docker/webui.Dockerfile -t digitops-webui .
#   docker run --rm --network host -e TF_SERVING_URL=http://localhost:8501 digitops-webui
# The cache mounts need BuildKit: on by default since Docker 23; with docker-compose 1.x,
# export DOCKER_BUILDKIT=1 first.

# Only the lists this image needs leave this stage, so an edit to pyproject.toml that
# leaves them alone rebuilds nothing below. constraints.txt (the full pin list) is optional:
# an empty one stands in when the repository has none.
FROM python:3.11-slim-bookworm AS requirements
WORKDIR /src
COPY pyproject.toml constraints.tx[t] docker/requirements.py ./
RUN mkdir /requirements && touch constraints.txt && cp constraints.txt /requirements/ \
 && python requirements.py webui >/requirements/rest.txt

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
 && mkdir -p /app /feedback && chown "${APP_UID}:${APP_GID}" /feedback
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY contract.py ./
COPY corrections/ corrections/
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
