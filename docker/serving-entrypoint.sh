#!/bin/sh
# The official tensorflow/serving image's entrypoint, word for word, with our server in place of
# tensorflow_model_server: MODEL_NAME and MODEL_BASE_PATH pick the model, gRPC on 8500 and
# REST on 8501, and every argument given to the container is appended. Later flags win, so
# `--rest_api_port=9000` or a `--model_config_file` overrides what is set here; the few flags
# our server does not implement (--grpc_max_threads, ...) are accepted and logged as ignored.
set -eu
exec python -m serving --port=8500 --rest_api_port=8501 \
  --model_name="${MODEL_NAME}" --model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"
