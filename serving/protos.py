"""TF Serving's MonitoringConfig and BatchingParameters protos, which its pip package lacks.

tensorflow-serving-api ships ModelServerConfig but not these two, so their fields are
transcribed here from upstream (`config/monitoring_config.proto`,
`servables/tensorflow/session_bundle_config.proto`, BatchingParameters' long-standing fields
plus large batch splitting) and parsed with protobuf's own text format: a file that parses
here parses in the real server. Text format goes by field names, so the numbers of the two
splitting fields, which are ours, never meet a file.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

_F = descriptor_pb2.FieldDescriptorProto


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="digitops/serving_configs.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )

    def message(name: str, *fields: tuple[str, int, int, str, int]) -> None:
        msg = file.message_type.add(name=name)
        for field_name, number, kind, type_name, label in fields:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name

    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("PrometheusConfig", ("enable", 1, _F.TYPE_BOOL, "", one),
            ("path", 2, _F.TYPE_STRING, "", one))
    message("MonitoringConfig",
            ("prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", one))
    int64 = ".google.protobuf.Int64Value"
    message("BatchingParameters",
            ("max_batch_size", 1, _F.TYPE_MESSAGE, int64, one),
            ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, int64, one),
            ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, int64, one),
            ("num_batch_threads", 4, _F.TYPE_MESSAGE, int64, one),
            ("thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue", one),
            ("allowed_batch_sizes", 6, _F.TYPE_INT64, "", many),
            ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, "", one),
            ("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE,
             ".google.protobuf.BoolValue", one),
            ("max_execution_batch_size", 9, _F.TYPE_MESSAGE, int64, one))
    return file


def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(_build_file())
    return pool


_POOL = _pool()
MonitoringConfig = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))
BatchingParameters = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def read_monitoring_config(path: str | Path):
    """Parse a monitoring.config file; raises text_format.ParseError on a malformed one."""
    return text_format.Parse(Path(path).read_text(), MonitoringConfig())


def read_batching_parameters(path: str | Path):
    """Parse a batching.config file; raises text_format.ParseError on a malformed one."""
    return text_format.Parse(Path(path).read_text(), BatchingParameters())
