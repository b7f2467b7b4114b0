"""``aigiqa train``: fine-tune a learned metric on a database split (mounted by aigiqa.cli).

Mount with ``app.command("train")(train_command)`` or ``app.add_typer(training.cli.app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aigiqa.databases.cli import DbOptionOpt, FollowOpt
from aigiqa.splits import SPLIT_OPTION_HELP

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("train")
def train_command(
    metric: Annotated[str, typer.Option("--metric", help="Learned metric spec: name[:opt=value…], "
                                        "e.g. effnet-lite0:backbone_lr=0.1")],
    database: Annotated[str, typer.Option("--database", help="Database name (aigiqa databases "
                                          "list)")],
    root: Annotated[Path, typer.Option("--root", help="Folder of the database release")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: model.pt, result.json, "
                                      "last.pt (resume state)")],
    split: Annotated[str, typer.Option(help=SPLIT_OPTION_HELP)] = "official",
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate of the head (AdamW, cosine)")] = 1e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 1e-4,
    loss: Annotated[str, typer.Option(help="l1 | mse | plcc | rank | fidelity, or a sum: "
                                      "plcc+rank")] = "mse",
    seed: Annotated[int, typer.Option()] = 0,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Part of train held out "
                                                "for validation when the split has none")] = 0.15,
    target: Annotated[str | None, typer.Option(help="Target (default: the main one)")] = None,
    test_root: Annotated[Path | None, typer.Option(
        "--test-root", help="Folder of the database DB that --split cross:DB[:TARGET] tests "
        "on")] = None,
    allow_names: Annotated[bool, typer.Option(
        "--allow-names/--name-blind", help="Let the model read file names and generator ids "
        "(default: name-blind, the model sees pixels and prompts only)")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="DataLoader worker "
                                         "processes (decode + resize)")] = 2,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA")] = True,
    cache_features: Annotated[bool, typer.Option(
        "--cache-features/--no-cache-features",
        help="With a frozen backbone, compute its features once (no augmentation)")] = True,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from "
                                         "OUT/last.pt when it is there")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    check_images: Annotated[bool, typer.Option("--check-images/--no-check-images",
                                               help="Decode every image before training")] = False,
    option: DbOptionOpt = None,
    follow_symlinks: FollowOpt = False,
) -> None:
    """Fine-tune on the training part, select on validation SRCC, evaluate on test."""
    from aigiqa.databases import cli as databases_cli
    from aigiqa.errors import MetricError
    from aigiqa.metrics.registry import metric_from_spec
    from aigiqa.training.loop import TrainConfig, train

    chosen = metric_from_spec(metric)  # a learned metric says here which extra it needs, if any
    if chosen.kind != "learned":
        raise MetricError(f"metric {chosen.name!r} is not trainable (kind {chosen.kind!r}); "
                          f"{chosen.train_refusal}")
    from aigiqa.errors import SplitError
    from aigiqa.protocols import parse_cross

    cross = parse_cross(split)  # a bad cross spec fails before any database is read
    if (cross is None) != (test_root is None):
        raise SplitError(f"--test-root is for --split cross:DB (the folder of DB), and such a "
                         f"split needs it (--split {split!r})")
    db = databases_cli.load(database, root, option, follow_symlinks, check_images)
    test_db = (databases_cli.load(cross[0], test_root, None, follow_symlinks, check_images)
               if cross is not None and test_root is not None else None)
    config = TrainConfig(split=split, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, loss=loss, val_fraction=val_fraction,
                         target=target, allow_names=allow_names, num_workers=workers,
                         device=device, amp=amp, cache_features=cache_features, out=out,
                         resume=resume, progress=progress)
    result = train(chosen, db, config, test_db)
    typer.echo(f"best epoch {result.best_epoch}: val SRCC {result.val['srcc']:.4f} "
               f"PLCC {result.val['plcc']:.4f}")
    if result.test is not None:
        typer.echo(f"test: SRCC {result.test['srcc']:.4f} PLCC {result.test['plcc']:.4f} "
                   f"KRCC {result.test['krcc']:.4f} (n={result.test['n']})")
    where = result.protocol["test"]
    typer.echo(f"protocol: --split {split}, tested on {where['database']} {where['target']}, "
               f"{'name-blind' if result.protocol['name_blind'] else 'names allowed'}")
    typer.echo(f"checkpoint: {result.checkpoint}\nresults: {result.result_file}")
    names = " --allow-names" if chosen.reads_names else ""
    typer.echo(f"score with: aigiqa bench --metrics '{result.bench_spec}'{names} ...")
