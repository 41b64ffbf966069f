"""Adapters and auditors found through entry points, built-ins and plugins alike.

A third-party package adds one by declaring, in its own pyproject.toml::

    [project.entry-points."auditkit.auditors"]
    my_check = "my_package.my_check:MyCheckAuditor"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from auditkit.adapters.base import ModelAdapter
from auditkit.adapters.capabilities import capabilities
from auditkit.auditors.base import Auditor
from auditkit.errors import AuditError

ADAPTER_GROUP = "auditkit.adapters"
AUDITOR_GROUP = "auditkit.auditors"


@cache
def adapters() -> dict[str, type[ModelAdapter]]:
    return _load(ADAPTER_GROUP, ModelAdapter)


@cache
def auditors() -> dict[str, type[Auditor]]:
    return _load(AUDITOR_GROUP, Auditor)


def describe(kind: type) -> dict[str, str]:
    """Registered name -> where it comes from, for ``auditkit list``."""
    group = ADAPTER_GROUP if issubclass(kind, ModelAdapter) else AUDITOR_GROUP
    return {ep.name: f"{ep.value} ({_distribution(ep)})" for ep in _entry_points(group)}


def adapter_capabilities() -> dict[str, list[str]]:
    """Registered adapter name -> its capabilities (``score`` first), for ``auditkit list``."""
    return {name: sorted(capabilities(cls), key=lambda c: (c != "score", c)) for name, cls in adapters().items()}


def clear() -> None:
    """Forget what was loaded (tests that install plugins call this)."""
    adapters.cache_clear()
    auditors.cache_clear()


def _entry_points(group: str) -> list[EntryPoint]:
    seen: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        seen.setdefault(ep.name, ep)  # first on sys.path wins, like imports
    return sorted(seen.values(), key=lambda ep: (not ep.value.startswith("auditkit."), ep.name))


def _load(group: str, base: type) -> dict:
    found = {}
    for ep in _entry_points(group):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not look like an auditkit bug
            raise AuditError(f"plugin '{ep.name}' in entry-point group {group} failed to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise AuditError(f"plugin '{ep.name}' in {group} is not a subclass of {base.__name__}")
        if cls.name != ep.name:
            raise AuditError(f"plugin '{ep.name}' in {group} declares name '{cls.name}'; the two must match")
        found[ep.name] = cls
    return found


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown package"
