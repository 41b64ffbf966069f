"""Attribution engines for the explain auditor: one module per model kind over shared helpers."""
