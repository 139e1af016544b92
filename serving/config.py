"""Command-line settings of `python -m serving`, named exactly like tensorflow_model_server's.

A compose file or script written for the official image must run our server unchanged, so
every official flag is accepted: the ones we implement are settings below, the rest are
collected in `Settings.ignored` and named once in the log. There is deliberately no
`from_env()`: the official binary reads no environment variables either (its image's
entrypoint turns MODEL_NAME into flags), so that mapping belongs in our Docker entrypoint.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from contract import GRPC_PORT, LOOPBACK, REST_PORT, WARMUP_FILE

DESCRIPTION = """\
A TensorFlow-Serving-compatible REST and gRPC server for machines without Docker, and for tests.

It stands in for tensorflow/serving where Docker (or the official binary) is missing: same
flags, same REST API (/v1/models/...), same gRPC PredictionService and ModelService, same
models.config and batching.config, same status codes and error messages, Prometheus metrics
at the path monitoring.config names. It serves SavedModels with TensorFlow in one process.
Whenever `tensorflow_model_server` is on PATH, or the official image can run, use that
instead: the stack does.
"""

USAGE_EXAMPLE = """\
example:
  python -m serving --rest_api_port=8501 --model_config_file=models/models.config \\
      --model_config_file_poll_wait_seconds=10 \\
      --monitoring_config_file=serving/monitoring.config
  python -m serving --model_name=mnist --model_base_path=$PWD/models/mnist \\
      --enable_batching --batching_parameters_file=serving/batching.config
"""

# Official flags this server accepts but does not act on (gRPC tuning, TPU/GPU, TFRT ...).
IGNORED_FLAGS = (
    "grpc_socket_path", "grpc_channel_arguments", "grpc_max_threads",
    "enable_grpc_healthcheck_service", "use_alts_credentials", "ssl_config_file",
    "rest_api_timeout_in_ms", "rest_api_enable_cors_headers",
    "enable_per_model_batching_parameters",
    "num_load_threads", "num_unload_threads", "max_num_load_retries",
    "load_retry_interval_micros", "flush_filesystem_caches",
    "tensorflow_session_parallelism", "tensorflow_session_config_file",
    "platform_config_file", "per_process_gpu_memory_fraction", "saved_model_tags",
    "num_request_iterations_for_warmup", "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model", "num_tflite_pools", "num_tflite_interpreters_per_pool",
    "enable_signature_method_name_check", "xla_cpu_compilation_enabled", "enable_profiler",
    "thread_pool_factory_config_file", "mixed_precision", "skip_initialize_tpu",
    "use_tflite_model", "enable_model_warmup_with_tfrt", "use_tfrt",
)


def _bool(text: str) -> bool:
    """Parse a gflags-style boolean: true/false/1/0 (`--flag` alone means true)."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# Largest REST body or gRPC message accepted: 32 rows of big photos fit; 20,000 rows do not.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# Largest encoded image a string input may hold: ~20 MB once decoded in the graph, where a
# 12000x12000 PNG of 17 KB took 740 MB. A canvas drawing is 280x280.
MAX_IMAGE_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = GRPC_PORT
    rest_api_port: int = REST_PORT
    rest_api_num_threads: int = 4 * (os.cpu_count() or 1)
    rest_api_receive_timeout_in_ms: int = 30_000
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    file_system_poll_wait_seconds: int = 1
    monitoring_config_file: str = ""
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    enable_batching: bool = False
    batching_parameters_file: str = ""
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    refuse_reload_config_requests: bool = True
    ignored: tuple[str, ...] = ()  # official flags given on the command line but not acted on


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m serving", description=DESCRIPTION, epilog=USAGE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    flag = parser.add_argument

    def switch(name: str, default: bool, text: str) -> None:
        flag(f"--{name}", type=_bool, nargs="?", const=True, default=default,
             help=f"{text} (default: {str(default).lower()})")

    flag("--host", default=defaults.host,
         help=f"address REST and gRPC listen on; {LOOPBACK} keeps them to this machine "
              f"(default: {defaults.host}, every interface, as tensorflow_model_server)")
    flag("--port", type=int, default=defaults.port,
         help=f"port for the gRPC API; 0 turns gRPC off (default: {defaults.port})")
    flag("--rest_api_port", type=int, default=defaults.rest_api_port,
         help=f"port for the HTTP/REST API (default: {defaults.rest_api_port})")
    flag("--rest_api_num_threads", type=int, default=defaults.rest_api_num_threads,
         help="threads serving HTTP requests (default: 4 x CPUs = "
              f"{defaults.rest_api_num_threads})")
    flag("--rest_api_receive_timeout_in_ms", type=int,
         default=defaults.rest_api_receive_timeout_in_ms,
         help="most time one HTTP request (headers and body) may take to arrive; a slower "
              "client gets 408 and its connection is closed. Not a tensorflow_model_server "
              f"flag (default: {defaults.rest_api_receive_timeout_in_ms})")
    flag("--model_config_file", default="",
         help="ModelServerConfig text proto with the models to serve; when set, "
              "--model_name and --model_base_path are ignored (default: none)")
    flag("--model_config_file_poll_wait_seconds", type=int, default=0,
         help="seconds between re-reads of --model_config_file; 0 reads it once (default: 0)")
    flag("--model_name", default=defaults.model_name,
         help=f"name of the one model, without a config file (default: {defaults.model_name})")
    flag("--model_base_path", default="",
         help="folder holding the model's numeric version folders, without a config file "
              "(default: none)")
    flag("--file_system_poll_wait_seconds", type=int, default=1,
         help="seconds between scans for new version folders; 0 scans once (default: 1)")
    flag("--monitoring_config_file", default="",
         help="MonitoringConfig text proto; enables Prometheus metrics (default: none)")
    switch("allow_version_labels_for_unavailable_models", False,
           "let version_labels name versions that are not loaded (yet)")
    switch("enable_model_warmup", True,
           f"replay {WARMUP_FILE} before a version serves")
    switch("enable_batching", False,
           "batch concurrent predict requests together (REST and gRPC alike)")
    switch("refuse_reload_config_requests", defaults.refuse_reload_config_requests,
           "answer gRPC ModelService.HandleReloadConfigRequest with PERMISSION_DENIED: "
           "anyone who reaches --port could otherwise unload or relabel the models; the "
           "model config then comes from --model_config_file only. Not a "
           "tensorflow_model_server flag: that server always obeys the request")
    flag("--batching_parameters_file", default="",
         help="BatchingParameters text proto for --enable_batching; without it TF Serving's "
              "defaults apply (default: none)")
    flag("--max_request_bytes", type=int, default=defaults.max_request_bytes,
         help="largest REST request body or gRPC message accepted; larger ones are refused "
              "before they are parsed. Not a tensorflow_model_server flag (default: "
              f"{defaults.max_request_bytes})")
    flag("--max_image_pixels", type=int, default=defaults.max_image_pixels,
         help="largest encoded image (width x height, read from its header) a string input "
              "may hold; larger ones are refused before they are decoded. Not a "
              f"tensorflow_model_server flag (default: {defaults.max_image_pixels})")
    flag("--tensorflow_intra_op_parallelism", type=int, default=0,
         help="threads inside one TensorFlow op; 0 lets TensorFlow choose (default: 0)")
    flag("--tensorflow_inter_op_parallelism", type=int, default=0,
         help="TensorFlow ops run side by side; 0 lets TensorFlow choose (default: 0)")
    official = parser.add_argument_group(
        "accepted for compatibility with tensorflow_model_server, and ignored")
    for name in IGNORED_FLAGS:
        official.add_argument(f"--{name}", nargs="?", const="true", default=None,
                              help=argparse.SUPPRESS)
    official.description = ", ".join(f"--{name}" for name in IGNORED_FLAGS)
    return parser


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse a tensorflow_model_server command line into Settings."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    if not args["model_config_file"] and not args["model_base_path"]:
        parser.error("give --model_config_file, or --model_base_path (and --model_name)")
    ignored = tuple(name for name in IGNORED_FLAGS if args[name] is not None)
    implemented = {k: v for k, v in args.items() if k not in IGNORED_FLAGS}
    return Settings(**implemented, ignored=ignored)
