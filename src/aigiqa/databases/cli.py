"""``aigiqa databases list/validate/show/attach-mos`` and the options of every command that
takes a database (``--option KEY=VALUE`` for the reader, ``--follow-symlinks``), mounted by
``aigiqa.cli``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Database readers: list, validate, show; attach MOS.", no_args_is_help=True)

DbOptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", help="Database reader option key=value, repeatable, e.g. for csv: "
                 "--option file=scores.csv --option name_column=image --option "
                 "target_columns=mos=MOS,alignment=align --option score_range=1,5"),
]
FollowOpt = Annotated[
    bool, typer.Option("--follow-symlinks", help="Follow symbolic links in the database folder "
                       "that point outside it (refused by default)"),
]


@contextmanager
def reader_warnings() -> Iterator[None]:
    """Show the warnings of a database reader as 'warning: …' lines on stderr, error or not."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            yield
        finally:
            for warning in caught:
                typer.echo(f"warning: {warning.message}", err=True)


def load(database: str, root: Path, option: list[str] | None, follow_symlinks: bool,
         check_images: bool = False):
    """load_database with the command line's --option key=value (typed from the reader)."""
    from aigiqa.databases.options import parse_options
    from aigiqa.databases.registry import load_database

    options = parse_options(database, option)
    with reader_warnings():
        return load_database(database, root, check_images=check_images,
                             follow_symlinks=follow_symlinks, **options)


@app.command("list")
def databases_list() -> None:
    """List the database readers."""
    from aigiqa.databases.registry import list_databases

    for name in list_databases():
        typer.echo(name)


@app.command("validate")
def databases_validate(
    name: Annotated[str, typer.Argument(help="Database reader name")],
    root: Annotated[Path, typer.Argument(help="Database folder")],
    option: DbOptionOpt = None,
    follow_symlinks: FollowOpt = False,
) -> None:
    """Report every problem of a database folder (annotations and images); exit 1 if any."""
    from aigiqa.databases.options import parse_options
    from aigiqa.databases.registry import validate_database

    options = parse_options(name, option)
    with reader_warnings():
        problems = validate_database(name, root, follow_symlinks=follow_symlinks, **options)
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {root}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name} at {root}: OK")


@app.command("show")
def databases_show(
    name: Annotated[str, typer.Argument(help="Database reader name")],
    root: Annotated[Path, typer.Argument(help="Database folder")],
    check_images: Annotated[bool, typer.Option("--check-images/--no-check-images")] = False,
    option: DbOptionOpt = None,
    follow_symlinks: FollowOpt = False,
) -> None:
    """Summarise a database: records per split and generator, targets."""
    db = load(name, root, option, follow_symlinks, check_images)
    frame = db.to_frame()
    typer.echo(f"{db.name}: {len(db)} records, {len(db.labelled())} labelled, "
               f"targets {', '.join(db.info.target_names)}, range {db.info.score_range}")
    typer.echo(frame.groupby(["split"], sort=False).size().to_string())
    comparisons = getattr(db, "comparisons", None)
    if callable(comparisons):  # a preference database
        comp = comparisons()
        counts = comp["outcome"].value_counts()
        typer.echo(f"{comp['group'].nunique()} groups, {len(comp)} comparisons: "
                   + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("a", "b", "tie")))
    typer.echo(frame.groupby(["generator"]).size().to_string())


@app.command("attach-mos")
def databases_attach_mos(
    root: Annotated[Path, typer.Argument(help="Database folder (release layout: info_*.csv)")],
    mos: Annotated[Path, typer.Argument(help="MOS csv: image (or name), mos (aigiqa study "
                                        "export / aigiqa mos)")],
    score_range: Annotated[str, typer.Option("--range", help="Allowed MOS 'lo,hi'")] = "0,5",
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite MOS already there")
                       ] = False,
) -> None:
    """Write a study's MOS into the database's info_train/val/test.csv (mos column)."""
    from aigiqa.databases.attach import attach_mos
    from aigiqa.errors import DatabaseError

    try:
        lo, hi = (float(p) for p in score_range.split(","))
    except ValueError:
        raise DatabaseError(f"--range {score_range!r}: expected 'lo,hi', e.g. 0,5") from None
    result = attach_mos(root, mos, score_range=(lo, hi), replace=replace)
    typer.echo(f"{root}: MOS attached to {result.attached} images; {result.without} without "
               "MOS (left blank)")
    for split, (rated, blank) in result.splits.items():
        typer.echo(f"  {split}: {rated} with MOS, {blank} without")
