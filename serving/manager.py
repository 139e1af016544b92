"""Which versions are served: read models.config, watch version folders, load and unload.

Changes come from one background thread (and gRPC's HandleReloadConfigRequest), one at a
time under a lock; request threads only read. What a request
sees of a model is a `ModelView`, a frozen snapshot that the thread replaces whole after
each load or unload. A request takes the view once, so a version unloaded meanwhile still
answers the requests that already hold it: hot reloads fail no request in flight.

The rules follow TF Serving: numeric child folders are versions, anything else is ignored;
the version policy (latest N, all, specific) picks which to serve; a new version loads
before an old one unloads, and the old one stays while no wanted version is available; a
version that fails to load ends in state END with its error, and is retried only once its
folder changes; version labels may only name available versions unless
--allow_version_labels_for_unavailable_models, and a config change breaking that rule is
rejected whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import models_config
from serving.config import Settings
from serving.errors import ServingError, from_exception, invalid, not_found
from serving.servable import Servable

log = logging.getLogger(__name__)

ModelConfig = model_server_config_pb2.ModelConfig
Loader = Callable[..., Servable]


@dataclass(frozen=True)
class VersionStatus:
    """One row of GetModelStatus: a version's state and the error that ended it, if any."""

    version: int
    state: str  # LOADING, AVAILABLE or END (TF Serving's START/UNLOADING pass too fast here)
    error_code: str = "OK"
    error_message: str = ""

    def to_json(self) -> dict:
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}


@dataclass(frozen=True)
class ModelView:
    """What requests see of one model; replaced whole, never changed."""

    servables: Mapping[int, Servable] = field(default_factory=dict)  # the AVAILABLE versions
    labels: Mapping[str, int] = field(default_factory=dict)


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """What --model_name/--model_base_path mean: one model, latest version."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = name, base_path, "tensorflow"
    return config


def validate(config: model_server_config_pb2.ModelServerConfig) -> dict[str, ModelConfig]:
    """Check what TF Serving checks before it accepts a config; return the models by name."""
    if config.WhichOneof("config") != "model_config_list":
        raise invalid("Only model_config_list is supported in a model config file")
    models: dict[str, ModelConfig] = {}
    for model in config.model_config_list.config:
        if model.name in models:
            raise invalid(f"Illegal to list model {model.name} multiple times in config list")
        if model.model_platform != "tensorflow":
            raise invalid(f"Model {model.name}: model_platform must be \"tensorflow\", "
                          f"got {model.model_platform!r}")
        models[model.name] = model
    return models


def versions_on_disk(base_path: str) -> dict[int, Path]:
    """Numeric child folders of base_path; `.tmp-3`, `notes` and files are not versions."""
    base = Path(base_path)
    try:
        children = list(base.iterdir())
    except OSError:
        return {}
    return {int(p.name): p for p in children if p.name.isdigit() and p.is_dir()}


def aspired_versions(model: ModelConfig, on_disk: Mapping[int, Path]) -> set[int]:
    """Apply the model's version policy to the versions found on disk."""
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(on_disk)
    if choice == "specific":
        return set(policy.specific.versions) & set(on_disk)
    count = policy.latest.num_versions if choice == "latest" else 1
    return set(sorted(on_disk, reverse=True)[:max(count, 1)])


def _fingerprint(path: Path) -> tuple:
    """Changes when a version folder is replaced or its saved_model.pb rewritten."""
    stats = []
    for p in (path, path / "saved_model.pb"):
        try:
            st = p.stat()
            stats.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append(None)
    return tuple(stats)


class Manager:
    """Owns the served versions of every configured model."""

    def __init__(self, settings: Settings, load: Loader = Servable.load):
        self._settings = settings
        self._load = load
        self._models: dict[str, ModelConfig] = {}  # written by start() and the thread only
        self._views: dict[str, ModelView] = {}  # replaced whole; requests read it lock-free
        self._history: dict[str, dict[int, VersionStatus]] = {}
        self._failed: dict[tuple[str, int], tuple] = {}  # failed loads by folder fingerprint
        self._lock = threading.Lock()  # guards _history
        self._writer = threading.Lock()  # one change at a time: the watcher or a gRPC reload
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- requests -------------------------------------------------------------------------

    def servable(self, name: str, version: int | None = None,
                 label: str | None = None) -> Servable:
        """The servable a request names, or TF Serving's NOT_FOUND / INVALID_ARGUMENT."""
        view = self._views.get(name)
        if label is not None:
            version = self._label_version(name, label)
        if view is not None and version is None and view.servables:
            return view.servables[max(view.servables)]
        if view is not None and version in view.servables:
            return view.servables[version]
        request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise not_found(f"Servable not found for request: {request}")

    def status(self, name: str, version: int | None = None,
               label: str | None = None) -> list[VersionStatus]:
        """GetModelStatus: every version seen (newest first), or the one asked for."""
        if label is not None:
            version = self._label_version(name, label)
        with self._lock:
            history = dict(self._history.get(name, {}))
        if version is None:
            if not history:
                raise not_found(f"Could not find any versions of model {name}")
            return [history[v] for v in sorted(history, reverse=True)]
        if version not in history:
            raise not_found(f"Could not find version {version} of model {name}")
        return [history[version]]

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def _label_version(self, name: str, label: str) -> int:
        view = self._views.get(name)
        if view is None or label not in view.labels:
            raise invalid(f"Unrecognized servable version label: {label}")
        return view.labels[label]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Read the config and load the first versions, then keep watching in a thread.

        Unlike tensorflow_model_server, labels are checked after the first load, so a config
        with labels starts without --allow_version_labels_for_unavailable_models; a label
        naming a version that did not load still stops the server.
        """
        models = validate(self._read_config())
        self._models = models
        for name, model in models.items():
            self._sync(name, model)
        if not self._settings.allow_version_labels_for_unavailable_models:
            self._check_labels(models)
        for name, model in models.items():
            self._publish(name, labels=dict(model.version_labels))
        self._thread = threading.Thread(target=self._run, name="version-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        scan_every = self._settings.file_system_poll_wait_seconds
        config_every = self._settings.model_config_file_poll_wait_seconds
        if not self._settings.model_config_file:
            config_every = 0
        waits = [w for w in (scan_every, config_every) if w > 0]
        if not waits:
            return
        next_scan = next_config = time.monotonic()
        while not self._stop.wait(min(waits)):
            now = time.monotonic()
            try:
                with self._writer:
                    if config_every > 0 and now >= next_config + config_every:
                        next_config = now
                        self._reload_config()
                    if scan_every > 0 and now >= next_scan + scan_every:
                        next_scan = now
                        for name, model in list(self._models.items()):
                            self._sync(name, model)
            except Exception:  # the watcher must outlive any surprise; the log says what
                log.exception("Version manager cycle failed; will retry")

    # -- config ---------------------------------------------------------------------------

    def _read_config(self) -> model_server_config_pb2.ModelServerConfig:
        settings = self._settings
        if settings.model_config_file:
            return models_config.read(settings.model_config_file)
        return single_model_config(settings.model_name, settings.model_base_path)

    def reload(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """HandleReloadConfigRequest: serve `config` now, or raise and keep the current one.

        As in TF Serving, a polled --model_config_file that differs replaces it again.
        """
        models = validate(config)
        if not self._settings.allow_version_labels_for_unavailable_models:
            self._check_labels(models)
        with self._writer:
            if models != self._models:
                log.info("Applying the config of a ReloadConfigRequest")
                self._apply(models)

    def _reload_config(self) -> None:
        try:
            models = validate(self._read_config())
            if models == self._models:
                return
            if not self._settings.allow_version_labels_for_unavailable_models:
                self._check_labels(models)
        except (ServingError, OSError, text_format.ParseError) as err:
            log.error("Rejected %s, keeping the current config: %s",
                      self._settings.model_config_file, err)
            return
        log.info("Applying changed %s", self._settings.model_config_file)
        self._apply(models)

    def _apply(self, models: dict[str, ModelConfig]) -> None:
        """Unload removed models, then load and label what `models` asks for."""
        for name in set(self._models) - set(models):
            self._unload(name, list(self._views.get(name, ModelView()).servables))
            self._views = {k: v for k, v in self._views.items() if k != name}
        self._models = models
        for name, model in models.items():
            self._sync(name, model)
            self._publish(name, labels=dict(model.version_labels))

    def _check_labels(self, models: Mapping[str, ModelConfig]) -> None:
        for name, model in models.items():
            available = self._views.get(name, ModelView()).servables
            for version in model.version_labels.values():
                if version not in available:
                    raise ServingError(
                        "FAILED_PRECONDITION",
                        f"Request to assign label to version {version} of model {name}, "
                        "which is not currently available for inference")

    # -- versions -------------------------------------------------------------------------

    def _sync(self, name: str, model: ModelConfig) -> None:
        """Load wanted versions that are missing, then unload unwanted ones if safe."""
        on_disk = versions_on_disk(model.base_path)
        wanted = aspired_versions(model, on_disk)
        served = dict(self._views.get(name, ModelView()).servables)
        for version in sorted(wanted - set(served), reverse=True):
            servable = self._try_load(name, version, on_disk[version])
            if servable is not None:
                served[version] = servable
                self._publish(name, servables=served)
                self._set_status(name, VersionStatus(version, "AVAILABLE"))
        unwanted = [v for v in served if v not in wanted]
        if unwanted and wanted & set(served):
            self._unload(name, unwanted)

    def _try_load(self, name: str, version: int, path: Path) -> Servable | None:
        fingerprint = _fingerprint(path)
        if self._failed.get((name, version)) == fingerprint:
            return None  # failed before and unchanged since: TF Serving would not retry
        self._set_status(name, VersionStatus(version, "LOADING"))
        log.info("Loading servable version {name: %s version: %d} from %s", name, version, path)
        started = time.monotonic()
        try:
            servable = self._load(name, version, path, warmup=self._settings.enable_model_warmup)
        except Exception as err:  # any failure of one version must leave the others serving
            error = from_exception(err)
            self._failed[(name, version)] = fingerprint
            self._set_status(name, VersionStatus(version, "END", error.code, error.message))
            log.error("Loading servable version {name: %s version: %d} failed: %s: %s",
                      name, version, error.code, error.message)
            return None
        self._failed.pop((name, version), None)
        log.info("Successfully loaded servable version {name: %s version: %d} in %.1fs",
                 name, version, time.monotonic() - started)
        return servable

    def _unload(self, name: str, versions: list[int]) -> None:
        served = dict(self._views.get(name, ModelView()).servables)
        for version in versions:
            served.pop(version, None)
        self._publish(name, servables=served)
        for version in versions:
            self._set_status(name, VersionStatus(version, "END"))
            log.info("Unloaded servable version {name: %s version: %d}", name, version)

    def _publish(self, name: str, **changes) -> None:
        """Swap in a new view of one model: the only way requests see a change."""
        current = self._views.get(name, ModelView())
        view = ModelView(servables=changes.get("servables", current.servables),
                         labels=changes.get("labels", current.labels))
        self._views = {**self._views, name: view}

    def _set_status(self, name: str, status: VersionStatus) -> None:
        with self._lock:
            self._history.setdefault(name, {})[status.version] = status

