"""Writers: render an :class:`~auditkit.results.AuditResult` into the contract's files.

Writers compute nothing; they only format what the auditors and gates produced.
"""

from auditkit.report.output import check_writable, write_outputs

__all__ = ["check_writable", "write_outputs"]
