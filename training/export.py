"""Export a trained Keras model as a TF Serving SavedModel with DigitOps' two signatures."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from contract import (
    DIGIT_OUTPUT,
    IMAGE_INPUT,
    IMAGE_SIGNATURE,
    IMAGE_SIZE,
    MODEL_NAME,
    NORMALIZED_OUTPUT,
    PIXELS_INPUT,
    PROBABILITIES_OUTPUT,
    SERVING_SIGNATURE,
    WARMUP_FILE,
)
from training.preprocess import normalize_batch


def export_saved_model(model: keras.Model, export_dir: str | Path) -> Path:
    """Write `model` to export_dir with the `serving_default` and `predict_image` signatures."""

    @tf.function(input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE], tf.float32)])
    def pixels_signature(pixels):
        probabilities = model(pixels, training=False)
        return {
            PROBABILITIES_OUTPUT: probabilities,
            DIGIT_OUTPUT: tf.argmax(probabilities, axis=1, output_type=tf.int64),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def image_signature(image):
        normalized = normalize_batch(image)
        probabilities = model(normalized, training=False)
        return {
            PROBABILITIES_OUTPUT: probabilities,
            DIGIT_OUTPUT: tf.argmax(probabilities, axis=1, output_type=tf.int64),
            NORMALIZED_OUTPUT: normalized,
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_SIGNATURE, pixels_signature)
    archive.add_endpoint(IMAGE_SIGNATURE, image_signature)
    archive.write_out(str(export_dir), verbose=False)
    return Path(export_dir)


def write_warmup_requests(export_dir: str | Path, sample_pixels: np.ndarray) -> Path:
    """Write one warm-up request per signature, so TF Serving traces both before serving.

    sample_pixels: uint8 [n, 28, 28] MNIST digits; the first is also sent as a PNG.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    def log(signature: str, name: str, tensor: tf.Tensor) -> bytes:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name=signature)
        )
        request.inputs[name].CopyFrom(tf.make_tensor_proto(tensor))
        return prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        ).SerializeToString()

    sample = np.asarray(sample_pixels, dtype=np.uint8)
    png = tf.io.encode_png(sample[0][..., None]).numpy()
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log(SERVING_SIGNATURE, PIXELS_INPUT, sample.astype(np.float32)))
        writer.write(log(IMAGE_SIGNATURE, IMAGE_INPUT, np.array([png], dtype=object)))
    return path
