# DigitOps' own TF-Serving-compatible server (`python -m serving`) in an image that keeps the
# official tensorflow/serving image's contract: MODEL_NAME and MODEL_BASE_PATH, extra flags
# appended to the command, gRPC on 8500 and REST on 8501, batching with
# --enable_batching --batching_parameters_file. For hosts where tensorflow/serving cannot run
# (it is amd64-only): set SERVING_IMAGE=digitops-serving:<tag> in .env and compose builds and
# uses this one.
#   docker build --network host -f docker/serving.Dockerfile -t digitops-serving .
#   docker run --rm -p 8500:8500 -p 8501:8501 -v "$PWD/models/mnist:/models/mnist:ro" \
#     -e MODEL_NAME=mnist digitops-serving
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
 && python requirements.py serving --exclude tensorflow tensorflow-serving-api >/requirements/rest.txt

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
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --non-unique --gid "${APP_GID}" app \
 && useradd --non-unique --uid "${APP_UID}" --gid "${APP_GID}" --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app /models
# MODEL_NAME and MODEL_BASE_PATH with the official image's defaults.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    MODEL_NAME=model \
    MODEL_BASE_PATH=/models
WORKDIR /app
COPY contract.py ./
COPY serving/ serving/
# Same path as in the official image, for anyone who names it with --entrypoint.
COPY docker/serving-entrypoint.sh /usr/bin/tf_serving_entrypoint.sh
USER ${APP_UID}:${APP_GID}
EXPOSE 8500 8501
# Healthy once MODEL_NAME has an AVAILABLE version (compose checks its own model the same way).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(b'AVAILABLE' not in u.urlopen('http://127.0.0.1:8501/v1/models/' + os.environ['MODEL_NAME'], timeout=4).read())"]
ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]
ARG GIT_COMMIT=""
LABEL org.opencontainers.image.title="digitops-serving" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
