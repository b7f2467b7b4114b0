"""``aigiqa study …``: create a study, serve it, export its ratings and MOS (a typer sub-app)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

import typer

from aigiqa.databases.cli import DbOptionOpt, FollowOpt
from aigiqa.errors import AigiqaError
from aigiqa.files import check_file, write_text

app = typer.Typer(help="Plan, serve and export a subjective rating study.", no_args_is_help=True)


def _fail(exc: AigiqaError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def create(
    database: Annotated[str, typer.Option("--database", help="database name (aigiqa databases)")],
    root: Annotated[Path, typer.Option("--root", help="the database's folder")],
    subjects: Annotated[int, typer.Option("--subjects", help="number of subjects")],
    db: Annotated[str, typer.Option("--db", help="store: SQLite file path or SQLAlchemy URL")],
    design: Annotated[str, typer.Option("--design", help="full | balanced")] = "full",
    ratings_per_image: Annotated[int, typer.Option(
        "--ratings-per-image", help="subjects per image (balanced design)")] = 0,
    training: Annotated[int, typer.Option("--training", help="anchor images shown first")] = 5,
    repeats: Annotated[int, typer.Option("--repeats", help="hidden repeats per subject")] = 0,
    session_size: Annotated[int, typer.Option("--session-size", help="per session; 0: one")] = 0,
    scale_lo: Annotated[float, typer.Option("--scale-lo")] = 0.0,
    scale_hi: Annotated[float, typer.Option("--scale-hi")] = 5.0,
    scale_step: Annotated[float, typer.Option("--scale-step")] = 0.1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="study name shown to subjects")] = None,
    links: Annotated[Path | None, typer.Option("--links", help="CSV of subject links")] = None,
    base_url: Annotated[str, typer.Option("--base-url", help="links prefix")] = "",
    option: DbOptionOpt = None,
    follow_symlinks: FollowOpt = False,
) -> None:
    """Plan a study and store it; print the admin link and the subjects' links (shown once)."""
    from aigiqa.databases import cli as databases_cli
    from aigiqa.study.plan import create_study

    try:
        if links is not None:  # before the study exists: its tokens are shown only once
            check_file(links, "the subject links", "--links")
        loaded = databases_cli.load(database, root, option, follow_symlinks, check_images=True)
        study = create_study(db, loaded, subjects=subjects, design=design,
                             ratings_per_image=ratings_per_image or None, training=training,
                             repeats=repeats, session_size=session_size, seed=seed,
                             scale=(scale_lo, scale_hi, scale_step), name=name)
    except AigiqaError as exc:
        _fail(exc)
        return
    base = base_url.rstrip("/")
    typer.echo(f"study {study.id} '{study.name}': {len(study.subjects)} subjects, "
               f"{sum(study.n_trials.values())} trials")
    typer.echo(f"admin: {base}{study.admin_path}")
    if links is not None:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["subject", "token", "link", "trials"])
        for s in study.subjects:
            writer.writerow([s.label, s.token, f"{base}{s.path}", study.n_trials[s.label]])
        try:  # mode 0600 from its creation: the tokens are the subjects' passwords
            write_text(links, text.getvalue(), "the subject links", private=True)
        except AigiqaError as exc:
            typer.echo(text.getvalue())  # the only copy of the tokens
            _fail(exc)
        typer.echo(f"subject links: {links} (keep it private; tokens are not stored)")
    else:
        for s in study.subjects:
            typer.echo(f"{s.label}: {base}{s.path}")


@app.command()
def serve(
    db: Annotated[str, typer.Option("--db", help="store: SQLite file path or SQLAlchemy URL")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    images_root: Annotated[Path | None, typer.Option("--images-root",
                                     help="folder of the images if moved since planning")] = None,
    workers: Annotated[int, typer.Option("--workers", help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the rating web app with uvicorn."""
    import os

    import uvicorn

    from aigiqa.study.app import DB_ENV, IMAGES_ROOT_ENV, create_app

    if workers < 1:
        typer.echo("error: --workers must be >= 1", err=True)
        raise typer.Exit(2)
    try:
        # checks the store, creates tables; tuned (warm pool, gc.freeze) when served here
        app_ = create_app(db, images_root=images_root, tune_process=True)
    except AigiqaError as exc:
        _fail(exc)
        return
    if workers == 1:
        uvicorn.run(app_, host=host, port=port, log_level="warning")
        return
    os.environ[DB_ENV] = db if "://" in db else os.path.abspath(db)
    if images_root is not None:
        os.environ[IMAGES_ROOT_ENV] = str(images_root)
    uvicorn.run("aigiqa.study.app:app_from_env", factory=True, workers=workers, host=host,
                port=port, log_level="warning")


@app.command()
def export(
    db: Annotated[str, typer.Option("--db", help="store: SQLite file path or SQLAlchemy URL")],
    out: Annotated[Path, typer.Option("--out", help="folder for the CSV files")],
    method: Annotated[str, typer.Option("--method", help="MOS method (aigiqa mos --help)")] = "mos",
    study_id: Annotated[int | None, typer.Option("--study", help="default: latest")] = None,
) -> None:
    """Export raw ratings, MOS (rating trials; repeats excluded) and progress as CSV."""
    from aigiqa.study.export import export_study

    def warn(text: str) -> None:
        typer.echo(f"warning: {text}", err=True)

    try:
        paths = export_study(db, out, method=method, study_id=study_id, warn=warn)
    except AigiqaError as exc:
        _fail(exc)
        return
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
    if "mos" not in paths:
        typer.echo("mos: not written (no rating trial rated yet)")
