"""Run the TF-Serving-compatible REST and gRPC server (tensorflow/serving without Docker).

Usage:
    python -m serving --port=8500 --rest_api_port=8501 \\
        --model_config_file=models/models.config \\
        --enable_batching --batching_parameters_file=serving/batching.config \\
        --monitoring_config_file=serving/monitoring.config
"""

from __future__ import annotations

import logging
import signal
import sys
import time

from google.protobuf import text_format

from serving import protos
from serving.config import Settings, parse_args
from serving.errors import ServingError

log = logging.getLogger("serving")
QUEUE_LOG_EVERY_S = 10.0


class OncePer(logging.Filter):
    """Let one record through per `seconds`, saying how many were held back since.

    Waitress warns "Task queue depth is N" for every request that waits for a thread: under
    load that is thousands of lines saying one thing.
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self._next = 0.0
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return False
        if self._held:
            record.msg = f"{record.msg} ({self._held} more such warnings in the last " \
                         f"{self.seconds:.0f}s)"
        self._next, self._held = now + self.seconds, 0
        return True


def _configure_tensorflow(settings: Settings) -> None:
    import tensorflow as tf

    if settings.tensorflow_intra_op_parallelism:
        tf.config.threading.set_intra_op_parallelism_threads(
            settings.tensorflow_intra_op_parallelism)
    if settings.tensorflow_inter_op_parallelism:
        tf.config.threading.set_inter_op_parallelism_threads(
            settings.tensorflow_inter_op_parallelism)


def _metrics_path(settings: Settings) -> str | None:
    if not settings.monitoring_config_file:
        return None
    prometheus = protos.read_monitoring_config(settings.monitoring_config_file).prometheus_config
    return prometheus.path if prometheus.enable else None


def _batching_options(settings: Settings):
    """The batching.config's options, TF Serving's defaults without a file, None when off."""
    from serving.batching import BatchingOptions

    if not settings.enable_batching:
        if settings.batching_parameters_file:  # the real server reads it anyway: so do we
            protos.read_batching_parameters(settings.batching_parameters_file)
        return None
    if not settings.batching_parameters_file:
        return BatchingOptions()
    return BatchingOptions.from_proto(
        protos.read_batching_parameters(settings.batching_parameters_file))


def run(settings: Settings) -> int:
    """Load the models, then serve REST and gRPC until SIGTERM or Ctrl-C; return the status."""
    from serving import rest_server
    from serving.batching import Batching, Direct
    from serving.grpc_api import GrpcApi, create_server, grpc_address
    from serving.manager import Manager
    from serving.metrics import Metrics
    from serving.rest import DEFAULT_METRICS_PATH, create_app

    if settings.ignored:
        log.warning("Accepted but ignored (not implemented by python -m serving): %s",
                    ", ".join(f"--{name}" for name in settings.ignored))
    logging.getLogger("waitress.queue").addFilter(OncePer(QUEUE_LOG_EVERY_S))
    try:
        batching = _batching_options(settings)
        metrics_path = _metrics_path(settings)
        _configure_tensorflow(settings)
        manager = Manager(settings)
        manager.start()
    except (ServingError, OSError, text_format.ParseError) as err:
        log.error("Failed to start server. Error: %s", err)
        return 1
    predictor = Batching(batching) if batching else Direct()
    metrics = Metrics()
    app = create_app(manager, metrics_path, metrics=metrics, predictor=predictor,
                     max_request_bytes=settings.max_request_bytes,
                     max_image_pixels=settings.max_image_pixels)
    grpc_server = None
    try:
        if settings.port:
            api = GrpcApi(manager, predictor, metrics,
                          max_request_bytes=settings.max_request_bytes,
                          max_image_pixels=settings.max_image_pixels,
                          allow_reload=not settings.refuse_reload_config_requests)
            grpc_server = create_server(api, settings.host, settings.port,
                                        settings.rest_api_num_threads, settings.max_request_bytes)
        # Waitress buffers a body (beyond 512 KiB in a temporary file) before the app sees
        # it; the app refuses one over the limit with TF Serving's JSON error. Waitress's own
        # cap, higher, bounds what a body without Content-Length (chunked) can make it buffer.
        server = rest_server.create_server(
            app, settings.host, settings.rest_api_port, settings.rest_api_num_threads,
            max_body_bytes=4 * settings.max_request_bytes,
            receive_timeout=settings.rest_api_receive_timeout_in_ms / 1000)
    except OSError as err:
        log.error("Failed to start server. Error: %s", err)
        manager.stop()
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if grpc_server is not None:
        grpc_server.start()
        log.info("Running gRPC ModelServer at %s ...", grpc_address(settings.host, settings.port))
    log.info("Exporting HTTP/REST API at:%s:%d ...", settings.host, settings.rest_api_port)
    if batching:
        log.info("Batching: %s", batching)
    if metrics_path is not None:
        log.info("Prometheus metrics at %s", metrics_path or DEFAULT_METRICS_PATH)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=2)
        manager.stop()
        predictor.close()
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
