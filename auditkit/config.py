"""The static audit config: pydantic models for the sections every audit has.

Adapters and auditors bring their own settings models (``Adapter.Config``,
``Auditor.Settings``); :func:`auditkit.config_model.config_model` assembles them with these
into one strict model. This module imports nothing of auditkit, so anything may import it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds up to this
GATE_ID = re.compile(r"^(?P<auditor>[a-z][a-z0-9_-]*)\.(?P<metric>[a-z][a-z0-9_.]*)(\[(?P<slice>[^\]]+)\])?$")


class StrictModel(BaseModel):
    """Every config model rejects unknown keys, so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BinnedColumn(StrictModel):
    """A derived column: ``source`` cut into intervals ``[edge_i, edge_i+1)``."""

    source: str = Field(description="Numeric column to bin, e.g. age.")
    edges: list[float] = Field(min_length=2, description="Increasing bin edges; left-closed, right-open.")
    labels: list[str] | None = Field(None, description="One label per bin; defaults to '[a, b)'.")
    replace: bool = Field(False, description="Overwrite an input column of the same name (otherwise an error).")

    @model_validator(mode="after")
    def _check(self) -> BinnedColumn:
        if any(e != e for e in self.edges):
            raise ValueError("edges must be numbers, not NaN")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        if self.labels is not None and len(self.labels) != len(self.edges) - 1:
            raise ValueError(f"labels needs {len(self.edges) - 1} entries, one per bin")
        return self


class TextSource(StrictModel):
    """How a text model sees a row: a text column as is, or a row serialised by a template."""

    column: str | None = Field(None, description="Column that already holds the text.")
    template: str | None = Field(
        None, description="Sentence with {column} placeholders, e.g. 'The applicant is a {age} year old {sex}.'"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TextSource:
        if (self.column is None) == (self.template is None):
            raise ValueError("give exactly one of column or template")
        return self


class SplitSettings(StrictModel):
    test_size: float = Field(0.3, gt=0, lt=1, description="Share of rows held out for the audit.")
    stratify: list[str] = Field(
        default_factory=list, description="Columns to stratify on besides the label (e.g. sex)."
    )


class DataConfig(StrictModel):
    task: Literal["binary", "multiclass", "token-classification"] = "binary"
    path: Path = Field(description="CSV, Parquet, JSONL (or CoNLL for token-classification), relative to the config.")
    format: Literal["csv", "parquet", "jsonl", "conll"] | None = Field(None, description="Defaults to the file suffix.")
    sep: str | None = Field(None, min_length=1, max_length=1, description="CSV field separator; default ','.")
    label: str | None = Field(
        None, description="Column holding the true outcome (token-classification JSONL: the tags, default 'tags')."
    )
    positive_label: str | int | bool | None = Field(
        None, description="Binary only: label value of the favourable outcome (mapped to 1)."
    )
    negative_label: str | int | bool | None = Field(
        None, description="Binary only: the other label value (mapped to 0)."
    )
    classes: list[str] | None = Field(
        None, description="Multiclass only: the k >= 3 class names in the order reports and gate ids use."
    )
    tokens: str = Field("tokens", description="token-classification JSONL: the column holding each sentence's words.")
    tag_scheme: Literal["auto", "iob1", "iob2", "bioes"] = Field(
        "auto", description="token-classification: the tagging scheme of the file; tags are normalised to IOB2."
    )
    id_column: str | None = Field(None, description="Unique row id; defaults to the row number.")
    sensitive_features: list[str] = Field(default_factory=list)
    derived: dict[str, BinnedColumn] = Field(default_factory=dict, description="Columns computed from others.")
    split: SplitSettings = SplitSettings()
    text: TextSource | None = Field(None, description="Required by text models.")
    streaming: bool = Field(
        False,
        description="path is a Parquet file or folder too large for memory: it is counted in one streaming pass "
        "and never loaded (binary tasks, with a model adapter that can count, e.g. predictions).",
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.streaming:
            self._check_streaming()
        if self.task == "token-classification":
            for key in ("positive_label", "negative_label", "classes", "text"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} does not apply to task token-classification (tags come from the data)")
            if self.derived:
                raise ValueError("derived columns do not apply to task token-classification")
            return self
        if self.format == "conll":
            raise ValueError("format conll holds token-classification data; set task: token-classification")
        if self.label is None:
            raise ValueError("label is required: the column holding the true outcome")
        if self.task == "binary":
            for key in ("positive_label", "negative_label"):
                if getattr(self, key) is None:
                    raise ValueError(f"a binary task needs {key}")
            if str(self.positive_label) == str(self.negative_label):
                raise ValueError("positive_label and negative_label must differ")
            if self.classes is not None:
                raise ValueError(
                    "classes is for task: multiclass; a binary task names positive_label and negative_label"
                )
        elif self.task == "multiclass":
            if self.positive_label is not None or self.negative_label is not None:
                raise ValueError("positive_label and negative_label are for task: binary; multiclass uses classes")
            if self.classes is not None:
                if len(self.classes) < 3:
                    raise ValueError("a multiclass task needs at least 3 classes; use task: binary for 2")
                if len(set(self.classes)) != len(self.classes):
                    raise ValueError("classes repeats a name")
        return self

    def _check_streaming(self) -> None:
        """What a streamed dataset cannot do: only counts are kept, so nothing is derived, rendered or split."""
        if self.task != "binary":
            raise ValueError(f"streaming audits binary tasks only so far; task {self.task} is read into memory")
        if self.format not in (None, "parquet"):
            raise ValueError("streaming reads Parquet files only; convert the data to Parquet or drop streaming")
        for key in ("derived", "text"):
            if getattr(self, key):
                raise ValueError(f"{key} does not apply to streaming: write the column into the Parquet files")


#: Named rules a gate can cite instead of spelling out metric, op, threshold and source.
RULES: dict[str, dict[str, Any]] = {
    "four_fifths": {
        "metric": "fairness.demographic_parity_ratio[{slice}]",
        "op": ">=",
        "threshold": 0.8,
        "source": "four-fifths rule (US EEOC Uniform Guidelines, 29 CFR 1607.4(D))",
    },
}


class GateConfig(StrictModel):
    """A pass/fail rule on one metric id, ``<auditor>.<metric>[<slice>]``, or a named ``rule`` on a slice."""

    metric: str = Field(description="Metric id, e.g. fairness.demographic_parity_ratio[sex].")
    op: Literal[">=", ">", "<=", "<"]
    threshold: float = Field(allow_inf_nan=False)
    source: str = Field("", description="Where the rule comes from, e.g. 'four-fifths rule'.")
    on_inconclusive: Literal["warn", "fail"] = Field(
        "warn", description="What an interval straddling the threshold, or a missing value, does to the verdict."
    )
    baseline_tolerance: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="With --baseline: how much worse than the baseline the metric may get.",
    )
    rule: Literal["four_fifths"] | None = Field(None, description="A named rule; fills metric, op, threshold, source.")
    slice: str | None = Field(None, description="The slice a named rule applies to, e.g. sex.")

    @model_validator(mode="before")
    @classmethod
    def _expand_rule(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("rule") in RULES:
            if not data.get("slice"):
                raise ValueError(f"rule '{data['rule']}' needs a slice, e.g. slice: sex")
            defaults = dict(RULES[data["rule"]])
            defaults["metric"] = defaults["metric"].format(slice=data["slice"])
            data = {**defaults, **data}
        return data

    @field_validator("metric")
    @classmethod
    def _metric_form(cls, value: str) -> str:
        if not GATE_ID.match(value):
            raise ValueError(f"'{value}' is not of the form <auditor>.<metric>[<slice>]")
        return value

    @property
    def auditor(self) -> str:
        return GATE_ID.match(self.metric)["auditor"]  # type: ignore[index]


class ModelConfigBase(StrictModel):
    """Settings every adapter understands; adapters subclass it with their own."""

    adapter: str
    path: Path = Field(description="Model folder, relative to the config file; built there if absent.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(32, ge=1, description="Inference batch size.")


RAY_ADDRESS = re.compile(r"^(ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")


def ray_address_problem(address: str) -> str | None:
    """Why ``address`` is no Ray address ('local', 'auto', host:port or ray://host:port), or None.

    Checked before any model loads: a malformed address would otherwise wait out the connect timeout."""
    if address in ("local", "auto"):
        return None
    match = RAY_ADDRESS.match(address)
    if match is None:
        return f"'{address}' is not a Ray address: use local, auto, host:port or ray://host:port"
    if not 1 <= int(match["port"]) <= 65535:
        return f"'{address}': port {match['port']} is outside 1-65535"
    return None


class ExecutionSettings(StrictModel):
    """``execution:`` in the config: where auditors run their shards and tasks (auditkit.execution)."""

    engine: Literal["in_process", "ray"] = Field("in_process", description="in_process (default) or ray.")
    address: str = Field(
        "local",
        description="Ray only: 'local' starts a one-node Ray on this machine, 'auto' joins a running cluster, "
        "'ray://host:10001' connects a client.",
    )
    num_cpus: int | None = Field(None, ge=1, description="Ray 'local' only: CPUs of the one-node cluster.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        problem = ray_address_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    connect_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Ray 'auto' or an address: seconds to wait for the cluster to answer."
    )
    workers: int | None = Field(
        None, ge=1, description="Model-holding actors for attributions; default: as many as the cluster's GPUs or 2."
    )
    cpus_per_task: float = Field(1.0, gt=0, description="CPUs each task or actor asks for.")
    gpus_per_task: float | None = Field(
        None, ge=0, description="GPUs each task or actor asks for; default 1 when the cluster has GPUs, else 0."
    )


class AuditConfigBase(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100, description="Names the output folder.")
    description: str = ""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataConfig
    gates: list[GateConfig] = Field(default_factory=list)
    execution: ExecutionSettings = Field(
        default_factory=ExecutionSettings, description="Where the heavy parts run: in this process or on Ray."
    )

    # Filled in by config_model(); declared here for type checkers.
    model: Any = None
    auditors: Any = None
    # Set by the loader, not the user.
    config_path: Path | None = Field(None, exclude=True)
    auditor_order: list[str] = Field(default_factory=list, exclude=True)


AuditConfig = AuditConfigBase  # the concrete, registry-aware class comes from config_model()
