"""TF Serving's error model: a canonical status code, a message, and the HTTP status for it.

The REST handler answers every failure as `{"error": message}` with the HTTP status that
`http_server.cc` maps the code to, so clients cannot tell our server from the real one.
"""

from __future__ import annotations

# tensorflow/core/protobuf/error_codes.proto, with the HTTP status from http_server.cc.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
CODE_NAMES = list(HTTP_STATUS)  # index = numeric code, as in tf.errors
_NO_TRACES = "<stack traces unavailable>"


class ServingError(Exception):
    """A request or load failure with TF Serving's code name (e.g. "NOT_FOUND") and message."""

    def __init__(self, code: str, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or HTTP_STATUS[code]


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def from_exception(err: BaseException) -> ServingError:
    """Classify an exception from TensorFlow or the file system the way TF Serving would."""
    if isinstance(err, ServingError):
        return err
    code = getattr(err, "error_code", None)  # tf.errors.OpError carries the canonical code
    if isinstance(code, int) and 0 < code < len(CODE_NAMES):
        message = getattr(err, "message", str(err))
        # Eager TensorFlow prefixes the runtime's message with where the graph was built.
        return ServingError(CODE_NAMES[code], message.split(_NO_TRACES)[-1].strip())
    if isinstance(err, FileNotFoundError):
        return not_found(str(err))
    return ServingError("UNKNOWN", f"{type(err).__name__}: {err}")
