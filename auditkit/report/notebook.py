"""The notebook API: an audit result that renders itself with the same writers as the CLI."""

from __future__ import annotations

import dataclasses

from auditkit.report.html import render
from auditkit.report.markdown import to_markdown
from auditkit.report.summary import dumps
from auditkit.results import AuditResult


@dataclasses.dataclass
class NotebookResult(AuditResult):
    """What :func:`auditkit.run` returns: the typed result plus ``to_json``/``to_markdown``/``to_html``."""

    @classmethod
    def of(cls, result: AuditResult) -> NotebookResult:
        return cls(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)})

    def to_json(self) -> str:
        return dumps(self)

    def to_markdown(self) -> str:
        return to_markdown(self)

    def to_html(self) -> str:
        return render(self)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()
