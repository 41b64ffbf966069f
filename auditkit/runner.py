"""One direction of flow: config -> data -> adapter -> auditors -> results -> gates -> writers."""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from auditkit import registry
from auditkit.adapters.base import ModelAdapter
from auditkit.auditors.base import AuditContext, Auditor
from auditkit.baseline import compare_with_baseline, describe_pair, load_baseline, mismatches
from auditkit.config import MAX_SEED, AuditConfigBase, ray_address_problem
from auditkit.config_file import load_config
from auditkit.data import AuditData, Split, load_data, split_sha256
from auditkit.errors import AuditError
from auditkit.execution import open_executor
from auditkit.execution.base import check_execution
from auditkit.gates import evaluate_gates
from auditkit.mitigation.apply import apply_mitigation as apply_fix
from auditkit.mitigation.apply import load_mitigation
from auditkit.model_store import ensure_model, is_stale
from auditkit.predictions import Predictions
from auditkit.progress import SILENT, ProgressReporter
from auditkit.report import check_writable, write_outputs
from auditkit.results import AuditorResult, AuditResult, Provenance
from auditkit.streaming.source import StreamedSplit
from auditkit.training import seed_everything
from auditkit.version import __version__

VERSIONED = ("torch", "transformers", "captum", "fairlearn", "opacus", "numpy", "pandas", "scikit-learn")


@dataclass(frozen=True)
class Prepared:
    config: AuditConfigBase
    data: AuditData
    adapter: ModelAdapter


def prepare(config: AuditConfigBase, progress: ProgressReporter, *, build: bool = True) -> Prepared:
    """Load the data and the model (building it when configured and ``build`` is true)."""
    adapter_cls = registry.adapters()[config.model.adapter]
    adapter_cls.check_data(config.model, config.data)
    data = load_data(config.data, config.seed, hold_out=adapter_cls.holds_out)
    if build:
        ensure_model(adapter_cls, config, data, progress)
    with progress.step("load model"):
        adapter = adapter_cls.load(config.model, config.data)
    return Prepared(config, adapter.match_data(data), adapter)


def implementation(name: str, config: AuditConfigBase) -> type[Auditor]:
    """Auditor ``name``'s implementation for the audit's task (validate refused a task it lacks)."""
    found = registry.auditor_for(name, config.data.task)
    if found is None:
        raise AuditError(f"auditors.{name}: auditor '{name}' has no implementation for task {config.data.task}")
    return found


def selected_auditors(config: AuditConfigBase, only: list[str] | None) -> list[str]:
    configured = list(config.auditor_order)
    if not only:
        return configured
    unknown = [name for name in only if name not in configured]
    if unknown:
        raise AuditError(
            f"--only: '{unknown[0]}' is not configured under auditors (configured: {', '.join(configured)})"
        )
    return [name for name in configured if name in only]


def run_audit(
    config_path: str | Path,
    *,
    out: str | Path | None = None,
    only: list[str] | None = None,
    seed: int | None = None,
    baseline: str | Path | None = None,
    baseline_any: bool = False,
    progress: ProgressReporter = SILENT,
    write: bool = True,
    ray: str | None = None,
    apply_mitigation: str | Path | None = None,
    mitigation_method: str | None = None,
) -> tuple[AuditResult, Path]:
    """Run the audit described by ``config_path``; write its files unless ``write`` is false.

    A baseline must come from the same audit, data file and test split unless ``baseline_any``.
    ``ray`` (an address: local, auto, ray://...) runs it on Ray whatever the config says.
    ``apply_mitigation`` (a ``mitigation.json``) replaces the test decisions by its group thresholds
    (method ``mitigation_method``) on the model's scores before any auditor reads them.
    """
    started, started_at = time.perf_counter(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    config = load_config(config_path)
    if seed is not None:
        if not 0 <= seed <= MAX_SEED:
            raise AuditError(f"--seed {seed}: must be a whole number from 0 to {MAX_SEED}")
        config = config.model_copy(update={"seed": seed})
    if ray is not None:
        problem = ray_address_problem(ray)
        if problem:
            raise AuditError(f"--ray {problem}")
        execution = config.execution.model_copy(update={"engine": "ray", "address": ray})
        config = config.model_copy(update={"execution": execution})
    out_dir = Path(out) if out is not None else Path("reports") / config.name
    if write:
        check_writable(out_dir)
    names = selected_auditors(config, only)
    applied = load_mitigation(Path(apply_mitigation), mitigation_method) if apply_mitigation is not None else None
    previous = load_baseline(Path(baseline)) if baseline is not None else None
    prepared = prepare(config, progress)
    current = {"audit": config.name, "data": prepared.data.sha256, "split": split_sha256(prepared.data.test)}
    if previous is not None:
        differ = mismatches(previous, current)
        if differ and not baseline_any:
            raise AuditError(
                f"--baseline {previous.path}: audited something else ({'; '.join(differ)}); "
                "pass --baseline-any to compare anyway"
            )
    seed_everything(config.seed)
    results: dict[str, AuditorResult] = {}
    seconds: dict[str, float] = {}
    with open_executor(config.execution) as executor:
        context = AuditContext(config, prepared.data, prepared.adapter, progress, executor)
        verb = "count (streamed)" if isinstance(prepared.data.test, StreamedSplit) else "score"
        with progress.step(f"{verb} {len(prepared.data.test)} test rows"):
            predictions = context.predictions("test")
        if applied is not None:
            test_split = prepared.data.test
            if not isinstance(predictions, Predictions) or not isinstance(test_split, Split):
                raise AuditError(f"--apply-mitigation: applies to the rows of a binary audit, not {config.data.task}")
            predictions = context.replace_predictions("test", apply_fix(applied, predictions, test_split))
        for name in names:
            auditor = implementation(name, config)(getattr(config.auditors, name))
            started_auditor = time.perf_counter()
            with progress.step(f"auditor {name}"):
                results[name] = auditor.run(context)
            seconds[name] = round(time.perf_counter() - started_auditor, 3)
    gates = [g for g in config.gates if g.auditor in names]
    notes = []
    if len(gates) < len(config.gates):
        notes.append(
            f"{len(config.gates) - len(gates)} gates were not evaluated: their auditors were left out by --only."
        )
    if predictions.n_truncated:
        notes.append(
            f"{predictions.n_truncated} of {len(predictions)} texts exceeded the model's maximum length "
            "and were truncated."
        )
    notes += prepared.adapter.input_notes()
    if applied is not None:
        notes.append(applied.note(prepared.data.sha256))
    test = prepared.data.test
    result = AuditResult(
        audit=config.name,
        description=config.description,
        seed=config.seed,
        provenance=_provenance(config, prepared, started_at, time.perf_counter() - started, seconds),
        gates=evaluate_gates(gates, results),
        auditors=results,
        predictions=predictions,
        sensitive={}  # a streamed split's rows are never loaded: only their counts exist
        if isinstance(test, StreamedSplit)
        else {f: test.frame[f].astype(str).tolist() for f in prepared.data.sensitive_features},
        attributions=[record for r in results.values() for record in r.attribution_records()],
        probe_mentions=[record for r in results.values() for record in r.probe_records()],
        notes=notes,
    )
    if previous is not None:
        tolerances = {g.metric: g.baseline_tolerance for g in gates}
        fairness = getattr(config.auditors, "fairness", None)
        n_boot = fairness.n_boot if fairness is not None else 1000
        result.gates = compare_with_baseline(result, previous, tolerances, n_boot, config.seed)
        differ = mismatches(previous, current)
        allowed = f" Differences allowed by --baseline-any: {'; '.join(differ)}." if differ else ""
        result.notes.append(
            f"Gates compared: {describe_pair(previous, current)} ({_baseline_method(result)}).{allowed}"
        )
    if write:
        with progress.step(f"write {out_dir}"):
            write_outputs(result, out_dir)
    return result, out_dir


def _baseline_method(result: AuditResult) -> str:
    methods = sorted({g.baseline.method for g in result.gates if g.baseline is not None} - {"none"})
    return ", ".join(methods) or "no comparable gates"


def validate_config(config_path: str | Path, progress: ProgressReporter = SILENT) -> list[str]:
    """Check config, data columns and model without running auditors; returns what was checked."""
    config = load_config(config_path)
    adapter_cls = registry.adapters()[config.model.adapter]
    adapter_cls.check_data(config.model, config.data)
    data = load_data(config.data, config.seed, hold_out=adapter_cls.holds_out)
    lines = [
        f"config: {config.config_path} ({len(config.auditor_order)} auditors, {len(config.gates)} gates)",
        f"data: {data.path} ({len(data.train)} train rows, {len(data.test)} test rows, "
        f"sensitive features: {', '.join(data.sensitive_features) or 'none'})",
    ]
    lines.append(check_execution(config.execution))
    path = Path(config.model.path)
    if path.exists() and is_stale(config, data):
        lines.append(f"model: {path} was built from other settings or data and will be rebuilt on the next run")
    elif path.exists() and isinstance(data.test, StreamedSplit):  # the load checks every file's columns
        adapter_cls.load(config.model, config.data)
        lines.append(f"model: {path} holds the prediction columns in all {len(data.test.files)} files (streamed)")
    elif path.exists():
        adapter = adapter_cls.load(config.model, config.data)
        data = adapter.match_data(data)
        notes = adapter.input_notes()  # before scoring: only what the match over every row found
        adapter.predict(data.test.subset(list(range(min(2, len(data.test))))), progress)
        lines.append(f"model: {path} loads and scores ({adapter_cls.name})")
        lines += [f"model: {note}" for note in notes]
    elif getattr(config.model, "build", None) is not None:
        lines.append(f"model: {path} is absent and will be built from model.build on the first run")
    else:
        raise AuditError(f"model.path {path} does not exist and the config has no model.build section to build it")
    return lines


def _provenance(
    config: AuditConfigBase, prepared: Prepared, started_at: str, duration: float, seconds: dict[str, float]
) -> Provenance:
    assert config.config_path is not None
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return Provenance(
        config_sha256=hashlib.sha256(Path(config.config_path).read_bytes()).hexdigest(),
        data_sha256=prepared.data.sha256,
        model=str(prepared.adapter.model_dir),
        model_sha256=prepared.adapter.model_sha256,
        auditkit_version=__version__,
        started_at=started_at,
        duration_s=round(duration, 3),
        versions=versions,
        device=str(prepared.adapter.device),
        auditor_seconds=seconds,
        split_sha256=split_sha256(prepared.data.test),
    )
