"""The `fieldmark` command: one entry point for the pipeline and the study server.

Sub-command groups live next to the code they drive (`pipeline/cli.py`, `app/cli.py`); this
module assembles them and turns every user error into one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from app.cli import analyse, db_app, export, researcher_app, serve, study_app
from app.errors import AppError
from pipeline.cli import data_app, explain_app, model_app
from pipeline.errors import PipelineError

app = typer.Typer(
    name="fieldmark",
    help="Human-subject studies of image-classifier explanations: data, models, explanations, studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(explain_app, name="explain")
app.add_typer(study_app, name="study")
app.add_typer(db_app, name="db")
app.add_typer(researcher_app, name="researcher")
app.command("serve")(serve)
app.command("export")(export)
app.command("analyse")(analyse)

USER_ERRORS: tuple[type[Exception], ...] = (PipelineError, AppError)
# Typer vendors its own click; reach its exception classes through a public one.
_CLICK = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
UsageError: type[Exception] = _CLICK["UsageError"]
ClickException: type[Exception] = _CLICK["ClickException"]


@app.command("demo")
def demo(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the studies at the end.")] = True,
) -> None:
    """Build the demo data, model, explanations and studies under FIELDMARK_HOME (cached), then serve."""
    from fieldmark.demo import run_demo
    from pipeline.provenance import home

    run_demo(home(), serve)


def fail(message: str) -> int:
    print(f"fieldmark: error: {message}", file=sys.stderr)
    return 2


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit status (tests call this directly)."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="fieldmark", standalone_mode=False)
    except UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx else "fieldmark"
        return fail(f"{exc.format_message()} (see '{where} --help')")  # type: ignore[attr-defined]
    except ClickException as exc:
        return fail(exc.format_message())  # type: ignore[attr-defined]
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return fail("interrupted")
    except USER_ERRORS as exc:
        return fail(str(exc))
    except ValidationError as exc:  # settings from the environment (e.g. an unsafe production secret)
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or exc.title
        return fail(f"{where}: {first['msg'].removeprefix('Value error, ')}")
    except KeyboardInterrupt:
        return fail("interrupted; rerun the same command to resume")
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
