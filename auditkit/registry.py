"""Adapters and auditors found through entry points, built-ins and plugins alike.

A third-party package adds one by declaring, in its own pyproject.toml::

    [project.entry-points."auditkit.auditors"]
    my_check = "my_package.my_check:MyCheckAuditor"

An auditor implemented for more than one task registers one class per task, each under the name
``<auditor>`` or ``<auditor>.<anything>`` (``performance.tokens``); they share the auditor's name and
``Settings``, and :func:`auditor_for` finds the one for the audit's ``data.task``.
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
def registered_auditors() -> dict[str, type[Auditor]]:
    """Entry-point name -> auditor implementation, as registered (``performance``, ``performance.tokens``)."""
    return _load(AUDITOR_GROUP, Auditor)


@cache
def implementations() -> dict[str, list[type[Auditor]]]:
    """Auditor name -> its implementations, the one registered under the plain name first."""
    found: dict[str, list[type[Auditor]]] = {}
    registered = registered_auditors()
    for cls in registered.values():  # built-ins first, then plugins, as the entry points are ordered
        found.setdefault(cls.name, []).append(cls)
    for name, classes in found.items():
        classes.sort(key=lambda cls: cls is not registered.get(name))
        if name not in registered:
            raise AuditError(f"auditor '{name}' has task implementations but none registered under '{name}' itself")
        if len({cls.Settings for cls in classes}) > 1:
            raise AuditError(f"auditor '{name}': its task implementations must share one Settings class")
        claimed: dict[str, str] = {}
        for cls in classes:
            for task in cls.tasks:
                if task in claimed:
                    raise AuditError(f"auditor '{name}': {claimed[task]} and {cls.__name__} both implement '{task}'")
                claimed[task] = cls.__name__
    return found


def auditors() -> dict[str, type[Auditor]]:
    """Auditor name -> the implementation registered under that plain name (its Settings are every task's)."""
    registered = registered_auditors()
    return {name: registered[name] for name in implementations()}


def auditor_for(name: str, task: str) -> type[Auditor] | None:
    """The implementation of auditor ``name`` for ``data.task`` ``task``; None when no implementation has it."""
    return next((cls for cls in implementations().get(name, []) if task in cls.tasks), None)


def tasks_of(name: str) -> list[str]:
    """Every task some implementation of auditor ``name`` supports."""
    return [task for cls in implementations().get(name, []) for task in cls.tasks]


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
    registered_auditors.cache_clear()
    implementations.cache_clear()


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
        if ep.name != cls.name and not (group == AUDITOR_GROUP and ep.name.startswith(f"{cls.name}.")):
            raise AuditError(f"plugin '{ep.name}' in {group} declares name '{cls.name}'; the two must match")
        found[ep.name] = cls
    return found


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown package"
