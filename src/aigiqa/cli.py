"""The ``aigiqa`` command: parses options, calls the library, prints. No logic of its own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from aigiqa.assets import cli as assets_cli
from aigiqa.databases import cli as databases_cli
from aigiqa.databases.cli import DbOptionOpt, FollowOpt
from aigiqa.errors import AigiqaError
from aigiqa.splits import SPLIT_OPTION_HELP

app = typer.Typer(
    help="aigiqa: quality assessment of AI-generated images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts contain brackets such as fold:K[/N]
)
databases_app = databases_cli.app  # list, validate, show
metrics_app = typer.Typer(help="Quality metrics: list.", no_args_is_help=True)
ntire_app = typer.Typer(help="NTIRE 2024 challenge submissions.", no_args_is_help=True)
assets_app = assets_cli.app  # list, import, download
app.add_typer(databases_app, name="databases")
app.add_typer(metrics_app, name="metrics")
app.add_typer(ntire_app, name="ntire")
app.add_typer(assets_app, name="assets")


def _mount_extensions() -> None:
    """Commands defined next to the code they drive (mos, serve, study, train, generate)."""
    from aigiqa.generate.cli import app as generate_app
    from aigiqa.serve.cli import serve
    from aigiqa.study.cli import app as study_app
    from aigiqa.subjective.cli import mos
    from aigiqa.training.cli import train_command

    app.command("mos")(mos)
    app.command("serve")(serve)
    app.command("train")(train_command)
    app.add_typer(study_app, name="study", help="Subjective studies: create, serve, export.")
    app.add_typer(generate_app, name="generate")


_mount_extensions()

MetricsOpt = Annotated[
    str, typer.Option("--metrics", "-m", help="Comma-separated metric specs: name[:opt=value…]")
]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar")]
RetryOpt = Annotated[
    bool, typer.Option("--retry-failed", help="Score again the images whose failure is cached")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per metric call")]
BackendOpt = Annotated[
    str, typer.Option("--backend", help="local (worker processes) | ray (Ray Data; extra 'ray')")
]
AddressOpt = Annotated[
    str | None,
    typer.Option(help="Ray cluster to join (ray://host:10001); default: start a local Ray "
                 "with --workers CPUs"),
]


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder to write the demo database into")],
    n: Annotated[int, typer.Option(min=10, help="Number of images")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes)")] = 0,
    blind: Annotated[bool, typer.Option(help="val/test without MOS, as released")] = False,
) -> None:
    """Write the embedded synthetic demo database in the AIGIQA-20K release layout."""
    from aigiqa.demo import build_demo

    root = build_demo(out, n=n, seed=seed, blind=blind)
    typer.echo(f"demo database: {n} synthetic images in {root}")


@app.command()
def bench(
    database: Annotated[str, typer.Option(help="Database reader name (aigiqa databases list)")],
    root: Annotated[Path, typer.Option(help="Database folder as released")],
    metrics: MetricsOpt,
    out: Annotated[Path, typer.Option(help="Results folder (results.csv/json, report.html)")],
    store: Annotated[str, typer.Option(help="Score store: SQLite file path or database URL")] = (
        "aigiqa-scores.sqlite"
    ),
    workers: WorkersOpt = 1,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for CIs")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed")] = 0,
    check_images: Annotated[
        bool, typer.Option("--check-images/--no-check-images", help="Decode every image first")
    ] = False,
    progress: ProgressOpt = True,
    retry_failed: RetryOpt = False,
    batch_size: BatchOpt = 8,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    split: Annotated[
        str | None, typer.Option(help="Only this split (e.g. test, held out from training)")
    ] = None,
    option: DbOptionOpt = None,
    follow_symlinks: FollowOpt = False,
    accuracy_rule: Annotated[str | None, typer.Option(
        help="Pairwise-accuracy rule imagereward | hpsv2 | pickscore (default: a preference "
        "database's own; imagereward with --mos-pairs-gap)")] = None,
    mos_pairs_gap: Annotated[float | None, typer.Option(
        min=0, help="MOS database: pairwise accuracy on the pairs of each prompt whose MOS "
        "differ by at least this much, instead of SRCC")] = None,
    mos_pairs_by: Annotated[str, typer.Option(
        help="--mos-pairs-gap: pairs within each prompt | generator | split, or all")] = "prompt",
    allow_names: Annotated[bool, typer.Option(
        "--allow-names/--name-blind", help="Give metrics that read them (e.g. "
        "clip-prompt-levels:generator_prefix=name) each image's file name and generator")] = False,
) -> None:
    """Score every image of a database with every metric, evaluate (SRCC…; pairwise accuracy on
    a preference database), write results and report."""
    from aigiqa.benchmark.runner import run_benchmark
    from aigiqa.metrics.registry import metrics_from_list

    db = databases_cli.load(database, root, option, follow_symlinks, check_images)
    if split is not None:
        if split not in db.splits:
            raise AigiqaError(f"--split {split!r}: {db.name} has splits {', '.join(db.splits)}")
        db = db.subset(split=split)
    chosen = metrics_from_list(metrics)
    result = run_benchmark(
        db, chosen, store=store, out=out, workers=workers, progress=progress,
        bootstrap=bootstrap, seed=seed, retry_failed=retry_failed, batch_size=batch_size,
        backend=backend, address=address, accuracy_rule=accuracy_rule,
        pairs_min_gap=mos_pairs_gap, pairs_by=mos_pairs_by, allow_names=allow_names,
    )
    typer.echo(f"{db.name}: {len(db)} images, {len(db.labelled())} labelled; "
               f"scores computed {result.meta['computed']}, cached {result.meta['cached']}")
    for line in result.evaluation.summary_lines(result.results):
        typer.echo(line)
    if result.failures:
        typer.echo(f"{len(result.failures)} image/metric failures (see report)", err=True)
    for kind, path in result.outputs.items():
        typer.echo(f"{kind}: {path}")


@app.command()
def score(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders")],
    metrics: MetricsOpt,
    prompts: Annotated[
        Path | None,
        typer.Option(help="CSV name,prompt (by image file name, or the name without extension)"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Scores CSV (default: stdout)")] = None,
    store: Annotated[str | None, typer.Option(help="Score cache (SQLite path or URL)")] = None,
    workers: WorkersOpt = 1,
    progress: ProgressOpt = True,
    retry_failed: RetryOpt = False,
    batch_size: BatchOpt = 8,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    allow_failures: Annotated[
        bool, typer.Option("--allow-failures", help="Exit 0 even if some images fail to score")
    ] = False,
) -> None:
    """Score a user's own images: one row per image, one column per metric (empty where an
    image failed). Exit 1 if any image failed, unless --allow-failures."""
    from aigiqa.benchmark.runner import score_files
    from aigiqa.files import check_file, write_text
    from aigiqa.metrics.registry import metrics_from_list

    if out is not None:
        check_file(out, "the scores CSV", "--out")  # before scoring, not after
    frame, table = score_files(
        inputs, metrics_from_list(metrics), prompts_csv=prompts, store=store, workers=workers,
        progress=progress, retry_failed=retry_failed, batch_size=batch_size, backend=backend,
        address=address,
    )
    if out is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        write_text(out, frame.to_csv(index=False), "the scores CSV")
        typer.echo(f"{len(frame)} images scored → {out}", err=True)
    for failure in table.failures:
        typer.echo(f"failed: {failure['path']} [{failure['metric']}]: {failure['error']}", err=True)
    if table.failures and not allow_failures:
        images = len({f["path"] for f in table.failures})
        typer.echo(f"error: {len(table.failures)} score(s) failed on {images} of {len(frame)} "
                   "image(s) (listed above; their cells are empty); pass --allow-failures to "
                   "exit 0 anyway", err=True)
        raise typer.Exit(1)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="Results folder written by `aigiqa bench`")],
) -> None:
    """Rebuild report.html from a results folder."""
    from aigiqa.benchmark.report import build_report

    typer.echo(str(build_report(results)))


@app.command()
def splits(
    name: Annotated[str, typer.Argument(help="Database reader name")],
    root: Annotated[Path, typer.Argument(help="Database folder")],
    split: Annotated[str, typer.Option(help=SPLIT_OPTION_HELP + " (logo alone: every one)")
                     ] = "official",
    seed: Annotated[int, typer.Option(help="Seed of random splits")] = 0,
    out: Annotated[Path | None, typer.Option(help="CSV name,split (default: counts only); "
                                             "logo adds held_out")] = None,
    option: DbOptionOpt = None,
    follow_symlinks: FollowOpt = False,
) -> None:
    """Show or write a split of a database's labelled images (blind ones never enter);
    ``--split logo`` shows every leave-one-generator-out split."""
    import pandas as pd

    from aigiqa.files import check_file, write_text
    from aigiqa.protocols import logo_sweep
    from aigiqa.splits import resolve_split

    if out is not None:
        check_file(out, "the split CSV", "--out")  # before reading the database, not after
    db = databases_cli.load(name, root, option, follow_symlinks)
    if split.strip().lower() == "logo":
        sweep = logo_sweep(db)
        width = max(len(g) for g in sweep)
        typer.echo(f"{'held out':<{width}}{'train':>8}{'test':>8}")
        for generator, parts in sweep.items():
            typer.echo(f"{generator:<{width}}{len(parts['train']):>8}{len(parts['test']):>8}")
        rows = [(n, part, g) for g, parts in sweep.items() for part, names in parts.items()
                for n in names]
        columns = ["name", "split", "held_out"]
    else:
        parts = resolve_split(db, split, seed=seed)
        for part, names in parts.items():
            typer.echo(f"{part:<8}{len(names):>8}")
        rows = [(n, part) for part, names in parts.items() for n in names]
        columns = ["name", "split"]
    if out is not None:
        write_text(out, pd.DataFrame(rows, columns=columns).to_csv(index=False), "the split CSV")
        typer.echo(f"{len(rows)} rows → {out}")


@metrics_app.command("list")
def metrics_list() -> None:
    """List the registered metrics with their metadata."""
    from aigiqa.metrics.describe import metric_metadata
    from aigiqa.metrics.registry import list_metrics, metric_class

    names = list_metrics()
    width = max([18, *map(len, names)]) + 2  # a long name never runs into its kind
    for name in names:
        info = metric_metadata(metric_class(name))
        flags = ("lower-better " if info["lower_better"] else "") + (
            "needs-prompt" if info["needs_prompt"] else ""
        )
        typer.echo(f"{name:<{width}}{info['kind']:<11}{flags:<26}{info['description']}")


@ntire_app.command("submit")
def ntire_submit(
    scores: Annotated[Path, typer.Argument(help="CSV with columns name and the metric column")],
    column: Annotated[str, typer.Option(help="Column of the scores CSV to submit")],
    out: Annotated[Path, typer.Option(help="Submission file (output.txt)")] = Path("output.txt"),
) -> None:
    """Write an NTIRE 2024 submission file from a scores CSV (e.g. from `aigiqa score`)."""
    import pandas as pd

    from aigiqa.ntire import write_submission

    frame = pd.read_csv(scores)
    for needed in ("name", column):
        if needed not in frame.columns:
            raise AigiqaError(f"{scores}: no column {needed!r} (columns: {list(frame.columns)})")
    write_submission(out, frame["name"].tolist(), frame[column].tolist())
    typer.echo(f"{len(frame)} scores → {out}")


@ntire_app.command("score")
def ntire_score(
    submission: Annotated[Path, typer.Argument(help="Submission file (name,score per line)")],
    database: Annotated[str, typer.Option(help="Database reader name for the truth")],
    root: Annotated[Path, typer.Option(help="Database folder")],
    split: Annotated[str | None, typer.Option(help="Only this split's records")] = None,
    option: DbOptionOpt = None,
    follow_symlinks: FollowOpt = False,
) -> None:
    """Score a submission against a database's MOS (SRCC, PLCC, main = (SRCC+PLCC)/2)."""
    from aigiqa.ntire import score_submission

    db = databases_cli.load(database, root, option, follow_symlinks)
    target = db.info.main_target
    truth = {r.name: r.targets[target] for r in db.labelled() if split in (None, r.split)}
    result = score_submission(submission, truth)
    for key in ("n", "srcc", "plcc", "krcc", "main"):
        typer.echo(f"{key:<5} {result[key]}")


def main() -> None:
    """Entry point: run the app; an AigiqaError becomes a one-paragraph message and exit code 2."""
    try:
        app()
    except AigiqaError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
