"""Run the TF-Serving-compatible REST server (stands in for tensorflow/serving without Docker).

Usage:
    python -m serving --rest_api_port=8501 --model_config_file=serving/models.config \\
        --monitoring_config_file=serving/monitoring.config
"""

from __future__ import annotations

import logging
import signal
import sys

from google.protobuf import text_format

from serving import protos
from serving.config import Settings, parse_args
from serving.errors import ServingError

log = logging.getLogger("serving")


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


def run(settings: Settings) -> int:
    """Load the models, then serve REST until SIGTERM or Ctrl-C; return the exit status."""
    import waitress

    from serving.manager import Manager
    from serving.rest import DEFAULT_METRICS_PATH, create_app

    if settings.ignored:
        log.warning("Accepted but ignored (not implemented by python -m serving): %s",
                    ", ".join(f"--{name}" for name in settings.ignored))
    try:
        if settings.batching_parameters_file:  # the real server refuses a bad file: so do we
            protos.read_batching_parameters(settings.batching_parameters_file)
        metrics_path = _metrics_path(settings)
        _configure_tensorflow(settings)
        manager = Manager(settings)
        manager.start()
    except (ServingError, OSError, text_format.ParseError) as err:
        log.error("Failed to start server. Error: %s", err)
        return 1
    app = create_app(manager, metrics_path)
    server = waitress.create_server(app, host="0.0.0.0", port=settings.rest_api_port,
                                    threads=settings.rest_api_num_threads)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("Exporting HTTP/REST API at:localhost:%d ...", settings.rest_api_port)
    if metrics_path is not None:
        log.info("Prometheus metrics at %s", metrics_path or DEFAULT_METRICS_PATH)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        manager.stop()
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
