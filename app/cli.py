"""Study-server sub-commands: `fieldmark serve`, `fieldmark db ...`, `fieldmark study ...`.

No torch anywhere below: these run in the web image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from app.errors import AppError

console = Console(stderr=True)
db_app = typer.Typer(help="The study database: migrations.", no_args_is_help=True)
study_app = typer.Typer(
    help="Study files: check them, list them, run bots through them, plan power.", no_args_is_help=True
)
researcher_app = typer.Typer(help="Researcher accounts.", no_args_is_help=True)


def loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="uvicorn worker processes.")] = 1,
    upgrade: Annotated[bool, typer.Option("--upgrade/--no-upgrade", help="Migrate the database first.")] = True,
) -> None:
    """Serve the studies under FIELDMARK_STUDIES_DIR to participants."""
    import uvicorn

    from app.main import create_app
    from app.migrate import upgrade as migrate
    from app.settings import DEV_SECRET, get_settings

    settings = get_settings()
    if settings.secret_key == DEV_SECRET and not loopback(host):
        raise AppError(
            f"refusing to serve on {host} with the development secret (anyone could forge a researcher's "
            "login): set FIELDMARK_SECRET_KEY to a long random value, or serve on 127.0.0.1"
        )
    if upgrade:
        settings.home.mkdir(parents=True, exist_ok=True)
        migrate(settings.db_url)
    create_app(settings)  # load and check every study now: a broken study file stops here, clearly
    uvicorn.run(
        "app.main:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        # X-Forwarded-For is believed only from the proxies named (none by default): otherwise any
        # client could claim any address and escape the login rate limit.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        # Participants read for seconds between pages; uvicorn's 5-s default closes connections
        # that the browser is about to reuse.
        timeout_keep_alive=30,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database (FIELDMARK_DATABASE_URL, default SQLite under FIELDMARK_HOME) up to date."""
    from app.migrate import upgrade
    from app.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    console.print(f"database at {settings.db_url.split('@')[-1]} is up to date")


@study_app.command("check")
def study_check(files: Annotated[list[Path], typer.Argument(help="Study files (YAML).")]) -> None:
    """Validate study files against their asset runs: fields, item counts, every asset needed, and
    pictures shared with the other studies given or in the studies folder."""
    from app.settings import get_settings
    from app.studies.loader import load_many

    settings = get_settings()
    given = {p.resolve() for p in files}
    folder = sorted(settings.studies_dir.glob("*.yaml")) if settings.studies_dir.is_dir() else []
    # the files given first: a copy being edited stands in for the folder's study of the same id
    out, errors = load_many(
        [*files, *(p for p in folder if p.resolve() not in given)], settings.assets_root, settings.secret_key
    )
    failed = [str(errors[p]) for p in files if p in errors]
    checked = {s.id: s.path for s in out.values() if s.path.resolve() in given}
    for study in (s for s in out.values() if s.id in checked):
        blocks = ", ".join(
            f"{b.id} ({b.task}, {len(study.items[b.id][0])} items × {len(study.items[b.id])} sets)"
            for b in study.spec.blocks
        )
        console.print(
            f"{study.path}: ok — {study.spec.title!r}, {len(study.spec.conditions)} conditions, blocks: {blocks}"
        )
    failed += _shared_stimuli(list(out.values()), checked)
    if failed:
        raise AppError("\n".join(failed))


def _shared_stimuli(studies: list[Any], checked: dict[str, Path]) -> list[str]:
    """Pictures the checked studies test that another study (checked, or served from the studies
    folder) shows labelled: undeclared ones are problems, declared ones notes."""
    from app.studies.overlap import overlaps

    problems = []
    found = overlaps(studies)
    for o in found:
        if o.tester not in checked:
            continue
        if o.declared:
            console.print(o.line(str(checked[o.tester])))
        else:
            problems.append(o.line(str(checked[o.tester])))
    for study in (s for s in studies if s.id in checked):  # a declaration that no longer holds may be stale
        for other in study.spec.shares_stimuli_with:
            if not any(o.tester == study.id and o.teacher == other for o in found):
                console.print(
                    f"{checked[study.id]}: shares_stimuli_with names {other!r}, which teaches none of its pictures"
                )
    return problems


@study_app.command("list")
def study_list() -> None:
    """The studies the server would serve, with their participant links."""
    from app.settings import get_settings
    from app.studies.loader import load_all

    settings = get_settings()
    for sid, study in load_all(settings.studies_dir, settings.assets_root, settings.secret_key).items():
        console.print(f"{sid}: {study.spec.title} — {settings.base_url}/s/{sid}")


@study_app.command("simulate")
def study_simulate(
    study: Annotated[str, typer.Argument(help="Study id.")],
    participants: Annotated[int, typer.Option("--participants", "-n")] = 8,
    strategy: Annotated[
        str, typer.Option("--strategy", help="random, oracle, always-agree or follow-model.")
    ] = "random",
    url: Annotated[str | None, typer.Option("--url", help="A running server; default: start one here.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Bots that take the study over real HTTP, as participants would (nothing is inserted directly)."""
    from app.bots import STRATEGIES, run_bots
    from app.settings import get_settings
    from app.studies.loader import load_all

    if strategy not in STRATEGIES:
        raise AppError(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if participants < 1:
        raise AppError("--participants must be at least 1")
    settings = get_settings()
    studies = load_all(settings.studies_dir, settings.assets_root, settings.secret_key)
    if study not in studies:
        raise AppError(f"no study {study!r} under {settings.studies_dir}; known: {', '.join(sorted(studies))}")
    results = run_bots(studies[study], participants, strategy, url, seed, settings)
    done = sum(r.status == "completed" for r in results)
    answered = sum(r.answered for r in results)
    right = sum(r.correct for r in results)
    console.print(
        f"{done}/{len(results)} bots completed {study} ({strategy}); {answered} trials answered"
        + (f", {right} right by the bots' own key" if strategy != "random" else "")
    )


def _loaded(study: str):  # type: ignore[no-untyped-def]
    from app.settings import get_settings
    from app.studies.loader import load_all

    settings = get_settings()
    studies = load_all(settings.studies_dir, settings.assets_root, settings.secret_key)
    if study not in studies:
        raise AppError(f"no study {study!r} under {settings.studies_dir}; known: {', '.join(sorted(studies))}")
    return settings, studies[study]


@researcher_app.command("add")
def researcher_add(
    email: Annotated[str, typer.Argument(help="The researcher's e-mail address (their login).")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a researcher account; without --password-stdin a password is generated and printed once."""
    import sys

    from app.db import make_engine, session_factory, transaction
    from app.services.accounts import add_researcher
    from app.settings import get_settings

    settings = get_settings()
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    engine = make_engine(settings.db_url)
    with transaction(session_factory(engine)) as session:
        _, used = add_researcher(session, email, password)
    engine.dispose()
    console.print(f"researcher {email} added; log in at {settings.base_url}/r/login")
    if not password_stdin:
        print(f"password (shown once): {used}")


def export(
    study: Annotated[str, typer.Argument(help="Study id.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the files into.")],
    raw_ids: Annotated[bool, typer.Option("--raw-ids", help="Also export raw Prolific ids (personal data).")] = False,
    all_origins: Annotated[
        bool, typer.Option("--all-origins", help="Include pilot and bot participants (each row says its origin).")
    ] = False,
) -> None:
    """trials.csv, participants.csv, codebook.md/.json and the exact study file."""
    from app.db import make_engine, session_factory
    from app.export.files import export as write

    settings, loaded = _loaded(study)
    engine = make_engine(settings.db_url)
    with session_factory(engine)() as session:
        files = write(session, loaded, out, settings.secret_key, raw_ids, all_origins)
    engine.dispose()
    for f in files:
        console.print(str(f))


def analyse(
    study: Annotated[str, typer.Argument(help="Study id.")],
    html: Annotated[Path | None, typer.Option("--html", help="Also write the report as HTML here.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write every table as CSV into this folder.")] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="auto (R's lme4 if installed), r or python; default FIELDMARK_STATS_ENGINE."),
    ] = None,
    exclusions: Annotated[
        bool, typer.Option("--exclusions/--no-exclusions", help="Apply the study's exclusion rules.")
    ] = True,
    all_origins: Annotated[
        bool, typer.Option("--all-origins", help="Analyse pilot and bot participants too (to check a study).")
    ] = False,
) -> None:
    """Accuracy by condition with its mixed model, and every analysis a results section needs."""
    from app.analysis import report as R
    from app.analysis.inference import METHOD, choose_engine
    from app.db import make_engine, session_factory

    settings, loaded = _loaded(study)
    chosen = choose_engine(engine or settings.stats_engine)
    db = make_engine(settings.db_url)
    with session_factory(db)() as session:
        rep = R.build(session, loaded, apply_exclusions=exclusions, engine=chosen, all_origins=all_origins)
    db.dispose()
    print(R.text(rep))
    if html is not None:
        from app.util import atomic_write
        from app.web import ROOT, templates

        css = (ROOT / "static" / "fieldmark.css").read_text(encoding="utf-8")
        page = templates.get_template("analysis_standalone.html").render(
            study=loaded.spec, rep=rep, method=METHOD, css=css
        )
        atomic_write(html, [page])
        console.print(f"report written to {html}")
    if csv is not None:
        for f in R.write_tables(rep, csv):
            console.print(str(f))


@study_app.command("power")
def study_power(
    study: Annotated[str, typer.Argument(help="Study id.")],
    accuracy: Annotated[str, typer.Option("--accuracy", help="Assumed accuracy per condition: none=0.60,heatmap=0.68")],
    participants: Annotated[
        str, typer.Option("--participants", help="Sizes: START:STOP:STEP (per study).")
    ] = "20:200:20",
    simulations: Annotated[int, typer.Option("--simulations")] = 1000,
    participant_sd: Annotated[float, typer.Option("--participant-sd", help="Log-odds sd between people.")] = 0.5,
    item_sd: Annotated[float, typer.Option("--item-sd", help="Log-odds sd between items.")] = 0.5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: one per core).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the power curves as SVG here.")] = None,
) -> None:
    """Power by simulation: the chance that the primary analysis detects each difference, per study size."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.analysis.charts import power_curves
    from app.analysis.power import parse_accuracy, parse_sizes, plan_for, power_table

    _, loaded = _loaded(study)
    acc = parse_accuracy(accuracy, [c.id for c in loaded.spec.conditions])
    sizes = parse_sizes(participants)
    if simulations < 1:
        raise AppError("--simulations must be at least 1")
    plan = plan_for(loaded, acc, participant_sd, item_sd)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("simulated studies", total=simulations * len(sizes))
        table = power_table(plan, sizes, simulations, seed, workers, progress=lambda k: bar.advance(task, k))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"{plan.trials} test trials per participant, {plan.sets} item set(s); participant sd {participant_sd}, "
        f"item sd {item_sd}; detected = p < 0.05 in the primary analysis's test (Python port of glmer's fit)"
    )
    if plot is not None:
        from app.util import atomic_write

        series: dict[str, list[tuple[float, float]]] = {}
        for r in table.itertuples():
            series.setdefault(str(r.comparison), []).append((float(r.participants), float(r.power)))
        atomic_write(plot, [power_curves(series)])
        console.print(f"plot written to {plot}")
