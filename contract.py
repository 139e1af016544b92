"""The names, ports and signatures every part of DigitOps agrees on.

Imported by training/, serving/, webui/ and the tests; it imports nothing heavy, so the
web UI's image can carry it without TensorFlow.
"""

MODEL_NAME = "mnist"
IMAGE_SIZE = 28
NUM_CLASSES = 10

# serving_default: MNIST-convention pixels in, probabilities and the digit out.
SERVING_SIGNATURE = "serving_default"
PIXELS_INPUT = "pixels"
# predict_image: an encoded image of any size in, plus the 28x28 the classifier saw.
IMAGE_SIGNATURE = "predict_image"
IMAGE_INPUT = "image"
PROBABILITIES_OUTPUT = "probabilities"
DIGIT_OUTPUT = "digit"
NORMALIZED_OUTPUT = "normalized"
# TF Serving replays the PredictionLog records in this file of a version folder before it
# serves that version; the trainer writes it, both servers read it.
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"

# TF Serving version labels and the MLflow aliases behind them.
STABLE_LABEL = "stable"
CANARY_LABEL = "canary"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"


def serving_version(model_version_status: list[dict]) -> str | None:
    """The version a TF Serving status answer says is serving: its first AVAILABLE one.

    `model_version_status` is the list from GET /v1/models/NAME[/labels/LABEL]; for a label it
    holds the one version the label names. None when no listed version is AVAILABLE.
    """
    for status in model_version_status:
        if isinstance(status, dict) and status.get("state") == "AVAILABLE":
            return str(status.get("version"))
    return None


# The drawing page: the PNG it sends is this many pixels square, drawn with a round pen this
# wide (a fraction of the side). The drawn-digit test set (training/drawn.py) draws the same way.
CANVAS_EXPORT_SIDE = 280
PEN_WIDTH = 0.075

# Ink contrast (0-255) below which a drawing is blank: the model's preprocessing and the web
# UI's check before it agree on it.
MIN_INK_CONTRAST = 24

# Where every server of `make up`, the benches and the tests listens: this machine only.
LOOPBACK = "127.0.0.1"
REST_PORT = 8501
GRPC_PORT = 8500
MLFLOW_PORT = 5000
WEBUI_PORT = 8080
PROMETHEUS_PORT = 9090

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns/artifacts"
DEFAULT_MODELS_DIR = "models"
# Runtime state, beside the versions it names: promote rewrites it, so it stays out of git.
DEFAULT_MODELS_CONFIG = "models/models.config"
DEFAULT_TF_SERVING_URL = f"http://localhost:{REST_PORT}"
# Corrections from the page (SQLAlchemy URL; PostgreSQL by URL too), env FEEDBACK_DB_URL.
DEFAULT_FEEDBACK_DB_URL = "sqlite:///mlruns/feedback.db"

# Registered-model version tags, read back by `promote` and the web UI.
RUN_ID_TAG = "run_id"
TEST_ACCURACY_TAG = "test_accuracy"
CANVAS_ACCURACY_TAG = "canvas_accuracy"
# Other people's handwriting through predict_image (training/real_writers.py): USPS test, and
# Semeion's evaluation rows. Also the runs' metric names.
REAL_USPS_TAG = "real_accuracy_usps"
REAL_SEMEION_TAG = "real_accuracy_semeion"


# MLflow's UI opens an experiment on its GenAI pages unless the link asks for model training:
# every MLflow link the stack prints or shows is built here, so it lands on the runs.
MLFLOW_ML_VIEW = "workflowType=machine_learning"


def mlflow_runs_url(ui_url: str, experiment_id: str) -> str:
    """An experiment's runs table in MLflow's UI."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{MLFLOW_ML_VIEW}"


def mlflow_run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    """One run's page in MLflow's UI."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{MLFLOW_ML_VIEW}"


def mlflow_model_url(ui_url: str, model: str = MODEL_NAME) -> str:
    """The registered model's versions and aliases in MLflow's UI."""
    return f"{ui_url.rstrip('/')}/#/models/{model}"
