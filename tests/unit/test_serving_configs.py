"""The checked-in TF Serving configs parse with TF Serving's own protos."""

from __future__ import annotations

from pathlib import Path

from contract import CANARY_LABEL, MODEL_NAME, STABLE_LABEL
from serving import models_config, protos
from training import models_config as training_config

SERVING = Path(__file__).resolve().parents[2] / "serving"


def test_models_config_serves_champion_and_challenger(tmp_path):
    """What promote writes for compose (champion 2, challenger 3) is what serving reads."""
    written = training_config.write(training_config.build(2, 3), tmp_path / "models.config")
    config = models_config.read(written)
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path) == (MODEL_NAME, f"/models/{MODEL_NAME}")
    assert model.model_version_policy.WhichOneof("policy_choice") == "specific"
    assert dict(model.version_labels) == {STABLE_LABEL: 2, CANARY_LABEL: 3}
    assert set(model.model_version_policy.specific.versions) == {2, 3}


def test_monitoring_config_enables_prometheus():
    config = protos.read_monitoring_config(SERVING / "monitoring.config")
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_batching_config_is_valid_for_tf_serving():
    batching = protos.read_batching_parameters(SERVING / "batching.config")
    sizes = list(batching.allowed_batch_sizes)
    # TF Serving refuses allowed sizes that are not increasing or do not end at the maximum.
    assert sizes == sorted(sizes) and sizes[-1] == batching.max_batch_size.value
    assert batching.num_batch_threads.value >= 1
