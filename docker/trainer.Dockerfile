# DigitOps trainer: `python -m training` (train, promote, list, bootstrap), TensorFlow and the
# MLflow client. Compose runs it once as `bootstrap`; more runs and promotions:
#   docker compose run --rm trainer train --model convnet --epochs 3
#   docker compose run --rm trainer promote --version 2
# Alone (MLflow on localhost:5000; ./models must be writable by uid 1000):
#   docker build --network host -f docker/trainer.Dockerfile -t digitops-trainer .
#   docker run --rm --network host -e MLFLOW_TRACKING_URI=http://localhost:5000 \
#     -v "$PWD/models:/models" digitops-trainer train --epochs 1
# The cache mounts need BuildKit: on by default since Docker 23; with docker-compose 1.x,
# export DOCKER_BUILDKIT=1 first.

# Only the lists this image needs leave this stage, so an edit to pyproject.toml that
# leaves them alone rebuilds nothing below. constraints.txt (the full pin list) is optional:
# an empty one stands in when the repository has none.
FROM python:3.11-slim-bookworm AS requirements
WORKDIR /src
COPY pyproject.toml constraints.tx[t] docker/requirements.py ./
RUN mkdir /requirements && touch constraints.txt && cp constraints.txt /requirements/ \
 && python requirements.py serving --only tensorflow tensorflow-serving-api >/requirements/tf.txt \
 && python requirements.py training --exclude tensorflow tensorflow-serving-api >/requirements/rest.txt

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# A virtualenv without pip: the base image's pip fills it, and nothing that builds or
# installs packages is copied into the final image.
RUN python -m venv --without-pip /opt/venv
# TensorFlow in a layer of its own, written exactly alike in trainer.Dockerfile and
# serving.Dockerfile so the two builds share it.
COPY --from=requirements /requirements/tf.txt /requirements/constraints.txt /requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip --python /opt/venv/bin/python install -r /requirements/tf.txt -c /requirements/constraints.txt
COPY --from=requirements /requirements/rest.txt /requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip --python /opt/venv/bin/python install -r /requirements/rest.txt -c /requirements/constraints.txt

FROM python:3.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
# One uid for the image user and compose's `user:`, so the files the trainer writes into the
# bind-mounted ./models, ./serving and ./mlruns belong to the person who ran compose.
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --non-unique --gid "${APP_GID}" app \
 && useradd --non-unique --uid "${APP_UID}" --gid "${APP_GID}" --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app /models /cache/digitops/mnist /cache/digitops/real-writers \
    /cache/digitops/drawn /feedback \
 && chown -R "${APP_UID}:${APP_GID}" /models /cache /feedback
# XDG_CACHE_HOME: the MNIST download lands in /cache/digitops/mnist, USPS and Semeion in
# /cache/digitops/real-writers and the drawn-digit test set in /cache/digitops/drawn, volumes
# in compose.
# GIT_PYTHON_REFRESH: no git in here (GIT_COMMIT names the code); MLflow need not say so.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/cache \
    MPLBACKEND=Agg \
    GIT_PYTHON_REFRESH=quiet \
    TF_CPP_MIN_LOG_LEVEL=1 \
    MODELS_DIR=/models \
    MODELS_CONFIG=/models/models.config \
    SERVING_BASE_PATH=/models/mnist \
    WRITABLE_DIRS="/models"
COPY docker/writable-entrypoint.sh /usr/local/bin/
WORKDIR /app
COPY contract.py ./
COPY training/ training/
# The corrections store's schema and reader, shared with the web UI (none of its code).
COPY corrections/ corrections/
USER ${APP_UID}:${APP_GID}
# One-shot job: no HEALTHCHECK.
# Stops at once, naming APP_UID/APP_GID, when ./models is not writable.
ENTRYPOINT ["writable-entrypoint.sh", "python", "-m", "training"]
CMD ["bootstrap"]
# Last, so a new commit rebuilds nothing above: the run's code version where .git is absent.
ARG GIT_COMMIT=""
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.title="digitops-trainer" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
