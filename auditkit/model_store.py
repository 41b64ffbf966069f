"""Find the audited model, building and caching it when the config says how.

A built folder carries ``auditkit-build.json`` with the key of what built it (adapter,
build settings, data config, data hash, seed). A folder without that file is the
user's own model and is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from auditkit.adapters.base import BUILD_RECORD, ModelAdapter
from auditkit.config import AuditConfigBase
from auditkit.data import AuditData, label_text
from auditkit.errors import AuditError
from auditkit.leftovers import sweep
from auditkit.progress import ProgressReporter
from auditkit.version import __version__

MARKER = BUILD_RECORD
BUILD_FORMAT = 1  # bump when a change to the build code changes what the same settings produce


def build_key(config: AuditConfigBase, data: AuditData) -> str:
    data_settings = config.data.model_dump(mode="json", exclude={"path"})
    # The same data read the same way gives the same key: labels compare as text ("0" is 0),
    # and settings added later are left out while at their default, so old keys stay valid.
    data_settings["positive_label"] = label_text(config.data.positive_label)
    data_settings["negative_label"] = label_text(config.data.negative_label)
    if data_settings.get("sep") is None:
        data_settings.pop("sep", None)
    if data_settings.get("task") == "binary":  # multiclass settings, at their binary defaults
        data_settings.pop("task", None)
    if data_settings.get("classes") is None:
        data_settings.pop("classes", None)
    if not data_settings.get("streaming"):
        data_settings.pop("streaming", None)
    for spec in data_settings.get("derived", {}).values():
        if not spec.get("replace"):
            spec.pop("replace", None)
    runtime_only = getattr(type(config.model), "not_in_build_key", ())
    model_settings = config.model.model_dump(mode="json", exclude={"path", "device", "batch_size", *runtime_only})
    build = model_settings.get("build") or {}
    if isinstance(build.get("base"), str) and Path(build["base"]).is_absolute() and config.config_path is not None:
        # the loader made a relative base folder absolute: key it as written, so a moved checkout keeps its model
        build["base"] = os.path.relpath(build["base"], Path(config.config_path).parent)
    payload = {
        "format": BUILD_FORMAT,
        "adapter": config.model.adapter,
        "model": model_settings,
        "data": data_settings,
        "data_sha256": data.sha256,
        "seed": config.seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def ensure_model(
    adapter_cls: type[ModelAdapter], config: AuditConfigBase, data: AuditData, progress: ProgressReporter
) -> Path:
    model_cfg = config.model
    path = Path(model_cfg.path)
    build = getattr(model_cfg, "build", None)
    if path.is_file():  # a model file (ONNX, a predictions table) is the user's own, used as it is
        if build is not None:
            raise AuditError(f"model.path {path} is a file; a model built from model.build goes in a folder")
        return path
    sweep(path.parent, path.name, ("building", "old"))  # leftovers of a build that was killed
    if path.is_dir():
        marker = path / MARKER
        if build is None or not marker.exists():
            return path
        key = build_key(config, data)
        if _recorded_key(marker) == key:
            return path
        progress.note(f"Build settings or data changed since {path} was built; rebuilding.")
    elif build is None:
        raise AuditError(f"model.path {path} does not exist and the config has no model.build section to build it")
    key = build_key(config, data)
    with progress.step(f"build model {path.name}"):
        _build(adapter_cls, config, data, path, key, progress)
    return path


def is_stale(config: AuditConfigBase, data: AuditData) -> bool:
    """Whether the model folder was built by auditkit from settings or data other than these."""
    marker = Path(config.model.path) / MARKER
    if getattr(config.model, "build", None) is None or not marker.exists():
        return False
    return _recorded_key(marker) != build_key(config, data)


def _recorded_key(marker: Path) -> str | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def _build(
    adapter_cls: type[ModelAdapter],
    config: AuditConfigBase,
    data: AuditData,
    path: Path,
    key: str,
    progress: ProgressReporter,
) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuditError(f"model.path {path}: cannot create the folder: {exc.strerror}") from None
    staging = path.parent / f".{path.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    started = time.perf_counter()
    try:
        adapter_cls.build(config.model, data, staging, config.seed, progress)
        record = {
            "key": key,
            "auditkit_version": __version__,
            "built_seconds": round(time.perf_counter() - started, 1),
            "data_sha256": data.sha256,
            "train_rows": len(data.train),
            "build": config.model.build.model_dump(mode="json"),
        }
        (staging / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if path.exists():
            path.rename(old)
        staging.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
