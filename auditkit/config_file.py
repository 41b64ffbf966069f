"""Read an audit YAML file into the config model, with errors a person can act on.

Every error names the file, the line (where the YAML parser knows it) and the key path;
an unknown key suggests the closest valid one.
"""

from __future__ import annotations

import difflib
import itertools
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from auditkit import registry
from auditkit.adapters.capabilities import CountScorer
from auditkit.auditors.base import Auditor
from auditkit.config import AuditConfigBase
from auditkit.config_model import config_model
from auditkit.errors import AuditError

Loc = tuple[str | int, ...]
INTERNAL_KEYS = {"config_path", "auditor_order"}  # set by the loader, never by the user
MAX_EXPANDED_NODES = 10_000  # what aliases may expand to; a real audit config has a few hundred values


def load_config(path: str | Path) -> AuditConfigBase:
    path = Path(path)
    raw, lines = _read_yaml(path)
    for internal in INTERNAL_KEYS & raw.keys():
        raise AuditError(f"{_where(path, lines, (internal,))}: unknown key '{internal}'")
    model = config_model()
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        raise AuditError(_describe(exc.errors()[0], path, lines, model)) from None
    base = path.resolve().parent
    data = config.data.model_copy(update={"path": (base / config.data.path).resolve()})
    model_cfg = config.model.model_copy(update={"path": (base / config.model.path).resolve()})
    build = getattr(model_cfg, "build", None)
    if isinstance(getattr(build, "base", None), str):  # a base model folder, like every path, is the config's
        model_cfg = model_cfg.model_copy(update={"build": build.model_copy(update={"base": _beside(base, build.base)})})
    auditors = config.auditors
    privacy = getattr(auditors, "privacy", None)
    if isinstance(getattr(privacy, "base", None), str):
        auditors = auditors.model_copy(
            update={"privacy": privacy.model_copy(update={"base": _beside(base, privacy.base)})}
        )
    order = list((raw.get("auditors") or {}).keys())
    config = config.model_copy(
        update={
            "data": data,
            "model": model_cfg,
            "auditors": auditors,
            "config_path": path.resolve(),
            "auditor_order": order,
        }
    )
    _check_cross_references(config, path, lines)
    return config


def _beside(folder: Path, spec: str) -> str:
    """A model folder given relative to the config file, as an absolute path; ``package:`` specs as they are."""
    if spec.startswith("package:") or Path(spec).is_absolute():
        return spec
    return str((folder / spec).resolve())


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[Loc, int]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise AuditError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise AuditError(f"{path}: is a folder, expected a YAML file") from None
    except UnicodeDecodeError as exc:
        raise AuditError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_nodes(node, path)  # before anything walks the tree as expanded
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise AuditError(f"{path}{where}: malformed YAML: {problem}") from None
    if raw is None:
        raise AuditError(f"{path}: the config file is empty")
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else f"a {type(raw).__name__}"
        raise AuditError(f"{path}: the top level must be a mapping of keys (name, data, model, ...), not {kind}")
    lines: dict[Loc, int] = {}
    _collect_lines(node, (), lines)
    return raw, lines


def _check_nodes(root: yaml.Node | None, path: Path) -> None:
    """Refuse repeated keys (YAML keeps the last silently) and aliases that expand without bound."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise AuditError(f"{path}:{node.start_mark.line + 1}: an alias refers to a node that contains it")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    line = k.start_mark.line + 1
                    if k.value in seen:
                        raise AuditError(
                            f"{path}:{line}: key '{k.value}' repeats the one on line {seen[k.value]}; "
                            "YAML would keep only the last: merge the two"
                        )
                    seen[k.value] = line
                total += size(k) + size(v)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        open_nodes.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise AuditError(
                f"{path}:{node.start_mark.line + 1}: YAML aliases expand to more than {MAX_EXPANDED_NODES} values; "
                "write the config out without nested aliases"
            )
        sizes[key] = total
        return total

    if root is not None:
        size(root)


def _collect_lines(node: yaml.Node | None, loc: Loc, lines: dict[Loc, int]) -> None:
    if node is None:
        return
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, key.value)
            lines[child] = key.start_mark.line + 1
            _collect_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*loc, index), lines)


def _where(path: Path, lines: dict[Loc, int], loc: Loc) -> str:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return f"{path}:{lines[loc[:cut]]}"
    return str(path)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: dict[str, Any], path: Path, lines: dict[Loc, int], model: type[BaseModel]) -> str:
    loc = _clean_loc(error["loc"])
    where = _where(path, lines, loc)
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; valid keys: {', '.join(valid)}" if valid else "")
        return f"{where}: unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"{where}: missing required key '{key}'"
    if error["type"] == "union_tag_invalid":
        return f"{where}: '{key}': {error['msg']}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: '{key}': {message}"


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop pydantic's union-member tags (e.g. 'hf-text', 'function-after[...]') from a location."""
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in _adapter_names()):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _adapter_names() -> set[str]:
    return set(registry.adapters())


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The valid keys of the model found at ``loc`` (empty when unknown)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[-1] if args else None
            if isinstance(part, int):
                continue
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [name for name, field in current.model_fields.items() if not field.exclude]
    return []


def _unwrap(annotation: Any) -> Any:
    """Optional[X] -> X; a union of models -> the first model (good enough for key hints)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else args[0]
        else:
            return annotation


def _check_cross_references(config: AuditConfigBase, path: Path, lines: dict[Loc, int]) -> None:
    """Checks that span sections: auditors get the capability they need, gates name real metrics."""
    adapter_cls = registry.adapters()[config.model.adapter]
    configured = list(config.auditor_order)
    if config.data.streaming and not issubclass(adapter_cls, CountScorer):
        raise AuditError(
            f"{_where(path, lines, ('data', 'streaming'))}: adapter '{config.model.adapter}' cannot audit a streamed "
            "dataset: that needs the 'count' capability (the predictions adapter has it); drop data.streaming"
        )
    implementations = {}
    for name in configured:
        settings = getattr(config.auditors, name)
        auditor = implementations[name] = _implementation(name, config, path, lines)
        for key, why in auditor.refused(settings):
            raise AuditError(
                f"{_where(path, lines, ('auditors', name, key))}: 'auditors.{name}.{key}' is not honoured for "
                f"task {config.data.task}: {why}; remove it"
            )
        try:
            auditor.check_adapter(settings, config, adapter_cls)
        except AuditError as exc:
            raise AuditError(f"{_where(path, lines, ('auditors', name))}: {exc}") from None
        auditor.check_config(settings, config)
    first: dict[str, int] = {}
    for index, gate in enumerate(config.gates):
        loc: Loc = ("gates", index, "metric")
        if gate.metric in first:
            earlier = _where(path, lines, ("gates", first[gate.metric])).rpartition(":")[2]
            raise AuditError(
                f"{_where(path, lines, loc)}: 'gates[{index}]' repeats the gate on '{gate.metric}' of "
                f"gates[{first[gate.metric]}] (line {earlier}); one gate per metric id"
            )
        first[gate.metric] = index
        if gate.auditor not in configured:
            raise AuditError(
                f"{_where(path, lines, loc)}: 'gates[{index}].metric' refers to auditor '{gate.auditor}', "
                f"which is not listed under 'auditors' (configured: {', '.join(configured) or 'none'})"
            )
        settings = getattr(config.auditors, gate.auditor)
        known = implementations[gate.auditor].metric_ids(settings, config)
        if gate.metric not in known:
            close = _reordered(gate.metric, known) or difflib.get_close_matches(
                gate.metric, sorted(known), n=1, cutoff=0.6
            )
            hint = f"; did you mean '{close[0]}'?" if close else ""
            if "class=" in gate.metric and config.data.task == "multiclass" and not config.data.classes:
                hint = "; list the class names in data.classes to gate on a class"
            raise AuditError(
                f"{_where(path, lines, loc)}: 'gates[{index}].metric': unknown metric '{gate.metric}'{hint}"
            )


def _implementation(name: str, config: AuditConfigBase, path: Path, lines: dict[Loc, int]) -> type[Auditor]:
    """Auditor ``name``'s implementation for ``data.task``; one error line naming the tasks it has otherwise."""
    found = registry.auditor_for(name, config.data.task)
    if found is None:
        has = ", ".join(registry.tasks_of(name)) or "none"
        raise AuditError(
            f"{_where(path, lines, ('auditors', name))}: auditor '{name}' does not audit task "
            f"{config.data.task} (it audits: {has})"
        )
    return found


def _reordered(metric: str, known: set[str]) -> list[str]:
    """The known id whose intersection names the same features in another order (``sex*race`` for
    ``race*sex``): edit distance would suggest a single feature instead."""
    head, bracket, rest = metric.partition("[")
    features = rest[:-1].split("|")[0].split("*") if bracket and rest.endswith("]") else []
    if len(features) < 2:
        return []
    tail = rest[:-1][len("*".join(features)) :]
    return sorted(
        m for order in itertools.permutations(features) if (m := f"{head}[{'*'.join(order)}{tail}]") in known
    )[:1]
