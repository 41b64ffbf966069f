"""The demographic name probe of Mishra, He & Belli (2020), "Assessing demographic bias in named
entity recognition": templates with a person slot, filled with first names from demographic groups.

Per group, the recall is the share of (name, template) mentions the model tags as exactly one
person entity at the slot. Intervals resample names within each group (the names are the sample
drawn from a population of names; the templates are fixed), so a ratio between groups is only as
certain as the few dozen names behind it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.errors import AuditError
from auditkit.ner.tags import spans
from auditkit.stats.groups import Estimate, GroupRules, group_disparity
from auditkit.stats.intervals import percentile_interval

SLOT = "{name}"
BUNDLED = "name_templates.txt"


@dataclass(frozen=True)
class Template:
    words: list[str]
    slot: int  # position of the name


@dataclass(frozen=True)
class ProbeSet:
    """Every template filled with every name: sentence k is template ``k % T`` with name ``k // T``."""

    templates: list[Template]
    names: list[str]
    groups: list[str]  # group of each name

    @property
    def sentences(self) -> list[list[str]]:
        return [
            [name if i == t.slot else w for i, w in enumerate(t.words)] for name in self.names for t in self.templates
        ]

    @property
    def slots(self) -> list[int]:
        return [t.slot for _ in self.names for t in self.templates]


def load_templates(path: Path | None = None) -> list[Template]:
    """One template per line with exactly one ``{name}`` word; ``#`` starts a comment line."""
    if path is None:
        text = resources.files("auditkit.ner").joinpath("resources", BUNDLED).read_text(encoding="utf-8")
        where = f"auditkit/ner/resources/{BUNDLED}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise AuditError(f"{path}: templates file not found") from None
        except UnicodeDecodeError:
            raise AuditError(f"{path}: templates file is not UTF-8 text") from None
        where = str(path)
    templates = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split()
        slots = [i for i, w in enumerate(words) if w == SLOT]
        if len(slots) != 1 or line.count(SLOT) != 1:
            raise AuditError(f"{where}:{number}: a template needs exactly one {SLOT} as a word of its own")
        templates.append(Template(words, slots[0]))
    if not templates:
        raise AuditError(f"{where}: no templates (one sentence per line with a {SLOT} word)")
    return templates


def load_names(path: Path, group_column: str, name_column: str = "name") -> tuple[list[str], list[str]]:
    """Names and their groups from a CSV; rows with an empty group are not part of this probe."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (FileNotFoundError, IsADirectoryError):
        raise AuditError(f"{path}: names file not found") from None
    except UnicodeDecodeError:
        raise AuditError(f"{path}: names file is not UTF-8 text") from None
    if not rows:
        raise AuditError(f"{path}: the names file has no rows")
    for column in (name_column, group_column):
        if column not in rows[0]:
            raise AuditError(f"{path}: column '{column}' is not in the names file (columns: {', '.join(rows[0])})")
    names, groups = [], []
    for number, row in enumerate(rows, start=2):
        name, group = (row[name_column] or "").strip(), (row[group_column] or "").strip()
        if not group:
            continue
        if not name or len(name.split()) != 1:
            raise AuditError(f"{path}:{number}: column '{name_column}' must hold one word, got {name!r}")
        names.append(name)
        groups.append(group)
    if len(set(groups)) < 2:
        raise AuditError(f"{path}: column '{group_column}' needs at least two groups of names for a comparison")
    return names, groups


def recognised(probe: ProbeSet, predicted_tags: list[list[str]], person_type: str) -> np.ndarray:
    """(names, templates) booleans: the name, and only the name, is one ``person_type`` entity."""
    hits = np.array(
        [(slot, slot + 1, person_type) in spans(tags) for slot, tags in zip(probe.slots, predicted_tags, strict=True)]
    )
    return hits.reshape(len(probe.names), len(probe.templates))


def mention_records(
    probe_name: str, probe: ProbeSet, predicted_tags: list[list[str]], hits: np.ndarray, person_type: str
) -> list[dict[str, Any]]:
    """``name_probe.jsonl`` lines, one per (name, template) mention in the probe's order: what the model
    tagged in each filled sentence, so a reviewer can see where a name was missed (and as what)."""
    records = []
    for k, (words, tags) in enumerate(zip(probe.sentences, predicted_tags, strict=True)):
        n, t = divmod(k, len(probe.templates))
        template = probe.templates[t]
        records.append(
            {
                "probe": probe_name,
                "name": probe.names[n],
                "group": probe.groups[n],
                "template_index": t,
                "template": " ".join(template.words),
                "slot": template.slot,
                "tokens": words,
                "recognised": bool(hits[n, t]),
                "slot_tag": tags[template.slot],
                "pred": [list(span) for span in spans(tags)],
                "person_type": person_type,
            }
        )
    return records


def group_draws(probe: ProbeSet, hits: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each name's recall and, per group, its recall in each names-bootstrap replicate.

    The draws depend only on the seed and the group sizes: two models probed with one seed are
    resampled on the same names, so their replicates are paired.
    """
    per_name = hits.mean(axis=1)
    groups = np.asarray(probe.groups)
    rng = np.random.default_rng(seed)
    draws = {}
    for group in sorted(set(probe.groups)):
        values = per_name[groups == group]
        draws[group] = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    return per_name, draws


def disparity_of(recalls: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of group recalls -> highest minus lowest, and lowest / highest (NaN where every recall is 0)."""
    high, low = recalls.max(axis=1), recalls.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(high > 0, low / high, np.nan)
    return {"name_recall_ratio": ratio, "name_recall_difference": high - low}


NO_PERSON = "no group's names were recognised as persons: its recall disparities are no evidence"


def probe_report(
    probe: ProbeSet,
    hits: np.ndarray,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    min_names: int,
    method: str = "between_groups",
) -> dict[str, Any]:
    """Recall per group with a names-bootstrap interval; its ratio and difference between groups (or to
    every name pooled) with the simultaneous intervals and small-group rule of the classification disparities."""
    per_name, draws = group_draws(probe, hits, n_boot, seed)
    groups = np.asarray(probe.groups)
    names = list(draws)
    sizes = np.array([int((groups == g).sum()) for g in names])
    observed = np.array([per_name[groups == g].mean() for g in names])
    values = np.vstack([observed, np.column_stack([draws[g] for g in names])])  # (1 + B, G)
    overall = (values @ sizes / sizes.sum())[:, None]
    by_group: dict[str, dict[str, Any]] = {}
    for k, group in enumerate(names):
        interval, _ = percentile_interval(values[1:, k], confidence)
        by_group[group] = {
            "n_names": int(sizes[k]),
            "n_mentions": int(sizes[k] * hits.shape[1]),
            "recall": float(observed[k]),
            "ci": {"recall": list(interval) if interval else None},
            "status": "ok" if sizes[k] >= min_names else "insufficient",
            "lowest_names": _lowest(probe, per_name, groups == group),
        }
        if sizes[k] < min_names:
            by_group[group]["insufficient"] = f"{sizes[k]} names, below min_names {min_names}"
    eligible = [k for k in range(len(names)) if sizes[k] >= min_names]
    disparity: dict[str, Any] = {"groups_compared": [names[k] for k in eligible], "ci": {}, "method": method}
    rules = GroupRules(min_group_size=min_names, method=method, confidence=confidence, n_boot=n_boot)
    if eligible:
        disparity["lowest_group"] = names[min(eligible, key=lambda k: observed[k])]
        disparity["highest_group"] = names[max(eligible, key=lambda k: observed[k])]
    for key, how in (("name_recall_ratio", "ratio"), ("name_recall_difference", "difference")):
        if eligible and observed[eligible].max() == 0:  # a difference of 0 would pass a gate for a blind tagger
            estimate = Estimate(None, reason=NO_PERSON)
        elif len(eligible) < 2:
            estimate = Estimate(None, reason=f"fewer than two groups with at least {min_names} names")
        else:
            estimate = group_disparity(values, overall, how, eligible, rules)
        disparity[key], disparity["ci"][key] = estimate.value, list(estimate.ci) if estimate.ci else None
        if estimate.reason:
            disparity[f"{key}_reason"] = estimate.reason
    return {"by_group": by_group, "disparity": disparity, "n_templates": len(probe.templates)}


def recall_changes(
    probe: ProbeSet,
    hits: np.ndarray,
    reference_hits: np.ndarray,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    min_names: int,
) -> dict[str, Any]:
    """Recall per group, ratio and difference of one model minus a reference's on the same probe, with
    paired names-bootstrap intervals (both resample the same names)."""
    per_name, draws = group_draws(probe, hits, n_boot, seed)
    reference_per_name, reference_draws = group_draws(probe, reference_hits, n_boot, seed)
    groups = np.asarray(probe.groups)
    by_group: dict[str, dict[str, Any]] = {}
    for group in draws:
        change = per_name[groups == group].mean() - reference_per_name[groups == group].mean()
        interval, _ = percentile_interval(draws[group] - reference_draws[group], confidence)
        by_group[group] = {
            "recall_change": float(change),
            "ci": {"recall_change": list(interval) if interval else None},
        }
    out: dict[str, Any] = {"by_group": by_group, "ci": {}}
    compared = [g for g in draws if int((groups == g).sum()) >= min_names]
    keys = ("name_recall_ratio", "name_recall_difference")
    if len(compared) < 2:
        for key in keys:
            out[f"{key}_change"], out[f"{key}_change_reason"] = None, f"fewer than two groups with {min_names}+ names"
            out["ci"][f"{key}_change"] = None
        return out
    recalls = np.array([[per_name[groups == g].mean() for g in compared]])
    reference_recalls = np.array([[reference_per_name[groups == g].mean() for g in compared]])
    point, reference = disparity_of(recalls), disparity_of(reference_recalls)
    boot = disparity_of(np.column_stack([draws[g] for g in compared]))
    reference_boot = disparity_of(np.column_stack([reference_draws[g] for g in compared]))
    found = recalls.max() > 0 and reference_recalls.max() > 0
    for key in keys:
        change = float(point[key][0] - reference[key][0])
        if not found or not np.isfinite(change):
            out[f"{key}_change"], out["ci"][f"{key}_change"] = None, None
            out[f"{key}_change_reason"] = f"{NO_PERSON}, by this run or by the reference"
            continue
        interval, _ = percentile_interval(boot[key] - reference_boot[key], confidence)
        out[f"{key}_change"], out["ci"][f"{key}_change"] = change, list(interval) if interval else None
    return out


def _lowest(probe: ProbeSet, per_name: np.ndarray, mask: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
    """The group's names recognised least often: what a reader checks first."""
    idx = np.flatnonzero(mask)
    order = idx[np.argsort(per_name[idx], kind="stable")][:k]
    return [{"name": probe.names[i], "recall": float(per_name[i])} for i in order]
