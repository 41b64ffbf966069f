"""The ``auditkit`` command line (see CONTRACT.md for commands and exit codes)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from auditkit.errors import AuditError
from auditkit.progress import ProgressReporter

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Ethics and explainability audits for machine-learning classifiers.",
)

ConfigArg = Annotated[Path, typer.Argument(help="The audit's YAML file.", show_default=False)]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guarded(debug: bool, action):  # type: ignore[no-untyped-def]
    """Run ``action``; user errors become one ``error:`` line and exit 2, tracebacks only with --debug."""
    # Ray's own log lines reach stderr only with --debug (auditkit.execution.ray_executor.quiet_native_stderr)
    os.environ["AUDITKIT_RAY_STDERR"] = "debug" if debug else "quiet"
    try:
        return action()
    except AuditError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted; the previous output folder is left as it was", err=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the contract forbids tracebacks without --debug
        if debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())} (rerun with --debug for the traceback)")


@app.command()
def run(
    config: ConfigArg,
    out: Annotated[Optional[Path], typer.Option(help="Output folder [default: reports/<name>].")] = None,  # noqa: UP007
    baseline: Annotated[Optional[Path], typer.Option(help="A previous summary.json to compare gates with.")] = None,  # noqa: UP007
    baseline_any: Annotated[
        bool, typer.Option("--baseline-any", help="Compare with a baseline of another audit, data file or split.")
    ] = False,
    only: Annotated[Optional[str], typer.Option(help="Comma-separated auditors to run.")] = None,  # noqa: UP007
    seed: Annotated[Optional[int], typer.Option(help="Override the config's seed.")] = None,  # noqa: UP007
    ray: Annotated[
        Optional[str],  # noqa: UP007
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run on Ray: 'local' (a one-node Ray here), 'auto' (a running cluster) or ray://host:port.",
        ),
    ] = None,
    apply_mitigation: Annotated[
        Optional[Path],  # noqa: UP007
        typer.Option(help="A mitigation.json whose group thresholds decide the test rows before auditing."),
    ] = None,
    mitigation_method: Annotated[
        Optional[str],  # noqa: UP007
        typer.Option(help="The threshold method of --apply-mitigation to apply (needed when it holds several)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress and no summary line.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Run the audit described by CONFIG; exit 0 if every gate passes, 1 if one fails, 2 on bad input."""
    from auditkit.runner import run_audit

    progress = ProgressReporter(enabled=False if quiet else None)
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None

    def action():  # type: ignore[no-untyped-def]
        return run_audit(
            config,
            out=out,
            only=names,
            seed=seed,
            baseline=baseline,
            baseline_any=baseline_any,
            progress=progress,
            ray=ray,
            apply_mitigation=apply_mitigation,
            mitigation_method=mitigation_method,
        )

    result, out_dir = _guarded(debug, action)
    if not quiet:
        from auditkit.report.format import headline

        failed = [g.id for g in result.gates if g.blocks]
        typer.echo(headline(result) + (f"; blocking: {', '.join(failed)}" if failed else ""))
        typer.echo(f"report: {out_dir / 'report.html'}")
    raise typer.Exit(result.exit_code)


@app.command()
def validate(
    config: ConfigArg,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Check the config, the data columns and the model without running any auditor."""
    from auditkit.runner import validate_config

    for line in _guarded(debug, lambda: validate_config(config)):
        typer.echo(f"ok  {line}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the config file (for editor completion)."""
    from auditkit.config_model import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command("list")
def list_plugins(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    """Print the registered auditors (with the capability each needs) and adapters (with their capabilities)."""
    from auditkit import registry
    from auditkit.adapters.base import ModelAdapter
    from auditkit.adapters.capabilities import capability_name
    from auditkit.auditors.base import Auditor

    def action():  # type: ignore[no-untyped-def]
        found = registry.registered_auditors()  # load, so broken plugins are reported
        registry.implementations()
        needs = {key: (capability_name(cls.requires), ", ".join(cls.tasks)) for key, cls in found.items()}
        return registry.describe(Auditor), needs, registry.describe(ModelAdapter), registry.adapter_capabilities()

    auditors, needs, adapters, capabilities = _guarded(debug, action)
    typer.echo("auditors (one implementation per line, with the tasks it audits):")
    for key, origin in auditors.items():
        need, tasks = needs[key]
        typer.echo(f"  {key:<20} needs {need:<10} tasks {tasks:<30} {origin}")
    typer.echo("adapters:")
    for name, origin in adapters.items():
        typer.echo(f"  {name:<16} {', '.join(capabilities[name]):<26} {origin}")


def main() -> None:
    app(prog_name="auditkit")


if __name__ == "__main__":
    sys.exit(main())
