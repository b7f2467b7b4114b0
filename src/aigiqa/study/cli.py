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

app = typer.Typer(help="Plan, serve and export a subjective study (absolute ratings or paired "
                  "comparisons).", no_args_is_help=True)


def _fail(exc: AigiqaError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def create(
    database: Annotated[str, typer.Option("--database", help="database name (aigiqa databases)")],
    root: Annotated[Path, typer.Option("--root", help="the database's folder")],
    subjects: Annotated[int, typer.Option("--subjects", help="number of subjects")],
    db: Annotated[str, typer.Option("--db", help="store: SQLite file path or SQLAlchemy URL")],
    mode: Annotated[str, typer.Option("--mode", help="ratings | pairs (paired comparisons)")
                    ] = "ratings",
    design: Annotated[str, typer.Option("--design", help="full | balanced")] = "full",
    ratings_per_image: Annotated[int, typer.Option(
        "--ratings-per-image", help="subjects per image (balanced design)")] = 0,
    judgements_per_pair: Annotated[int, typer.Option(
        "--judgements-per-pair", help="pairs, balanced design: subjects per pair")] = 0,
    allow_ties: Annotated[bool | None, typer.Option(
        "--allow-ties/--no-ties", help="pairs: '=' (about the same) is an answer; default no")
                          ] = None,
    pair_group: Annotated[str, typer.Option(
        "--pair-group", help="pairs: compare images of one prompt | all")] = "prompt",
    sampler: Annotated[str, typer.Option(
        "--sampler", help="pairs: fixed (planned now) | adaptive (chosen live from the "
        "choices so far)")] = "fixed",
    pairs_per_subject: Annotated[int, typer.Option(
        "--pairs-per-subject", help="pairs, adaptive sampler: pairs each subject judges")] = 0,
    training: Annotated[int, typer.Option(
        "--training", help="anchor images (pairs: practice pairs) shown first")] = 5,
    repeats: Annotated[int, typer.Option("--repeats", help="hidden repeats per subject")] = 0,
    session_size: Annotated[int, typer.Option("--session-size", help="per session; 0: one")] = 0,
    scale_lo: Annotated[float | None, typer.Option("--scale-lo", help="ratings: 0")] = None,
    scale_hi: Annotated[float | None, typer.Option("--scale-hi", help="ratings: 5")] = None,
    scale_step: Annotated[float | None, typer.Option("--scale-step", help="ratings: 0.1")] = None,
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
    from aigiqa.study.plan_pairs import create_pair_study

    try:
        if links is not None:  # before the study exists: its tokens are shown only once
            check_file(links, "the subject links", "--links")
        if mode not in ("ratings", "pairs"):
            raise AigiqaError(f"--mode {mode!r} is unknown; use ratings or pairs")
        given = {"--scale-lo": scale_lo, "--scale-hi": scale_hi, "--scale-step": scale_step,
                 "--ratings-per-image": ratings_per_image or None} if mode == "pairs" else {
                 "--judgements-per-pair": judgements_per_pair or None,
                 "--pair-group": None if pair_group == "prompt" else pair_group,
                 "--allow-ties/--no-ties": allow_ties,
                 "--sampler": None if sampler == "fixed" else sampler,
                 "--pairs-per-subject": pairs_per_subject or None}
        wrong = [flag for flag, value in given.items() if value is not None]
        if wrong:  # an option of the other mode would be silently ignored
            other = "ratings" if mode == "pairs" else "pairs"
            raise AigiqaError(f"{', '.join(wrong)}: only for --mode {other}, not --mode {mode}")
        _check_sampler(sampler, pairs_per_subject, design, judgements_per_pair, repeats)
        loaded = databases_cli.load(database, root, option, follow_symlinks, check_images=True)
        if mode == "pairs":
            study = create_pair_study(
                db, loaded, subjects=subjects, design=design,
                judgements_per_pair=judgements_per_pair or None, training=training,
                repeats=repeats, session_size=session_size, seed=seed, allow_ties=bool(allow_ties),
                group_by=pair_group, name=name, adaptive=sampler == "adaptive",
                pairs_per_subject=pairs_per_subject or None)
        else:
            study = create_study(db, loaded, subjects=subjects, design=design,
                                 ratings_per_image=ratings_per_image or None, training=training,
                                 repeats=repeats, session_size=session_size, seed=seed,
                                 scale=(0.0 if scale_lo is None else scale_lo,
                                        5.0 if scale_hi is None else scale_hi,
                                        0.1 if scale_step is None else scale_step), name=name)
    except AigiqaError as exc:
        _fail(exc)
        return
    base = base_url.rstrip("/")
    typer.echo(f"study {study.id} '{study.name}': {len(study.subjects)} subjects, "
               f"{sum(study.n_trials.values())} trials")
    if study.mode == "pairs":
        typer.echo(f"pairs: {study.n_pairs} candidate pairs within each {pair_group}; "
                   f"{study.n_left_out} images alone in their {pair_group} are in no pair")
        if sampler == "adaptive":
            typer.echo(f"adaptive sampler: {pairs_per_subject} pairs per subject, each chosen "
                       "when the subject reaches it")
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


def _check_sampler(sampler: str, pairs_per_subject: int, design: str,
                   judgements_per_pair: int, repeats: int) -> None:
    """The options that do not combine with ``--sampler`` (AigiqaError naming them)."""
    if sampler not in ("fixed", "adaptive"):
        raise AigiqaError(f"--sampler {sampler!r} is unknown; use fixed or adaptive")
    if sampler == "fixed":
        if pairs_per_subject:
            raise AigiqaError("--pairs-per-subject: only with --sampler adaptive (a fixed "
                              "plan's pairs come from --design and --judgements-per-pair)")
        return
    fixed = {"--design": design != "full", "--judgements-per-pair": bool(judgements_per_pair),
             "--repeats": bool(repeats)}
    wrong = [flag for flag, given in fixed.items() if given]
    if wrong:
        raise AigiqaError(f"{', '.join(wrong)}: not with --sampler adaptive (its pairs are "
                          "chosen live, --pairs-per-subject per subject; no hidden repeats)")
    if pairs_per_subject < 1:
        raise AigiqaError("--sampler adaptive needs --pairs-per-subject N (N >= 1): the pairs "
                          "each subject judges")


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
    model: Annotated[str, typer.Option("--model", help="pairs: bt | thurstone")] = "bt",
    ties: Annotated[str, typer.Option(
        "--ties", help="pairs: rao-kupper | davidson | drop")] = "rao-kupper",
    alpha: Annotated[float, typer.Option("--alpha", help="pairs: ridge alpha·Σs²")] = 0.01,
) -> None:
    """Export raw ratings, MOS (rating trials; repeats excluded) and progress as CSV; for a
    paired-comparison study: raw comparisons, scaled scores, position bias and progress."""
    from aigiqa.study.export import export_study

    def warn(text: str) -> None:
        typer.echo(f"warning: {text}", err=True)

    try:
        paths = export_study(db, out, method=method, study_id=study_id, warn=warn, model=model,
                             ties=ties, alpha=alpha)
    except AigiqaError as exc:
        _fail(exc)
        return
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
    if "comparisons" in paths:
        if "scores" not in paths:
            typer.echo("scores: not written (see the warning and pairs-report.json)")
    elif "mos" not in paths:
        typer.echo("mos: not written (no rating trial rated yet)")
