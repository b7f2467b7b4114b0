"""``aigiqa generate``: plan, show, run. Thin: parses, calls aigiqa.generate, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Build a database: plan and run generations (diffusers).",
                  no_args_is_help=True)


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


OnlyOpt = Annotated[str | None, typer.Option("--only", help="Comma-separated generator names")]


@app.command("plan")
def generate_plan(
    prompts: Annotated[Path, typer.Option(help="Prompts: a text file (one a line) or a csv/xlsx "
                                          "with a 'prompt' column (optional 'category')")],
    generators: Annotated[Path, typer.Option(help="Generators TOML ([generators.NAME] tables)")],
    out: Annotated[Path, typer.Option(help="The plan csv to write")],
    seed: Annotated[int, typer.Option(help="Seed of every choice of the plan")] = 0,
    splits: Annotated[str, typer.Option(help="train:val:test weights per generator")] = "7:1:2",
    only: OnlyOpt = None,
) -> None:
    """Plan one row per image: prompt, seed, steps, CFG, size, scheduler, split."""
    from aigiqa.generate import make_plan, read_generators, read_prompts, write_plan
    from aigiqa.generate.plan import parse_ratios

    ratios = parse_ratios(splits)
    specs = read_generators(generators, _names(only))
    plan = make_plan(read_prompts(prompts), specs, seed=seed, splits=ratios)
    write_plan(plan, out)
    typer.echo(f"{out}: {len(plan)} images of {len(specs)} generators, "
               f"{plan['prompt'].nunique()} prompts (seed {seed})")


@app.command("show")
def generate_show(plan: Annotated[Path, typer.Argument(help="A plan csv")]) -> None:
    """Counts per generator and split, steps, CFG, size and scheduler."""
    from aigiqa.generate import read_plan, summarize_plan

    typer.echo(summarize_plan(read_plan(plan)))


@app.command("run")
def generate_run(
    plan: Annotated[Path, typer.Argument(help="A plan csv (aigiqa generate plan)")],
    out: Annotated[Path, typer.Option(help="Database folder (AIGIQA-20K release layout)")],
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    dtype: Annotated[str | None, typer.Option(
        help="float32 | bfloat16 | float16 (default: each generator's, else float32)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per pipeline call")] = 4,
    allow_download: Annotated[bool, typer.Option(
        "--allow-download", help="Download hub pipelines missing from the cache")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Generate again the images that failed (NaN, black)")] = False,
    only: OnlyOpt = None,
    backend: Annotated[str, typer.Option(
        help="local | ray (one pipeline per Ray actor, one GPU each)")] = "local",
    workers: Annotated[int, typer.Option(
        min=1, help="--backend ray without --address: CPUs of the local Ray")] = 1,
    address: Annotated[str | None, typer.Option(
        help="--backend ray: the cluster (ray://head:10001 or host:port)")] = None,
) -> None:
    """Generate every unfinished image of the plan (resumable), then write the tables."""
    from aigiqa.generate import run_plan

    def step(done: int, total: int) -> None:
        typer.echo(f"  {done}/{total}", err=True)

    result = run_plan(plan, out, device=device, dtype=dtype, batch_size=batch_size,
                      allow_download=allow_download, only=_names(only),
                      retry_failed=retry_failed, on_batch=step, backend=backend,
                      workers=workers, address=address)
    per = result.seconds / result.generated if result.generated else float("nan")
    typer.echo(f"{out}: generated {result.generated}, finished before {result.skipped}, "
               f"failed {result.failed}, external (not generated) {result.external}; "
               f"{per:.3f} s per image")
    for line in result.failures:
        typer.echo(f"failed: {line}", err=True)
    typer.echo(f"tables: {result.tables['ok']} images, {result.tables['failed']} failures "
               "(failures.csv)")
    if result.tables.get("truncated"):
        typer.echo(f"truncated prompts: {result.tables['truncated']} images' prompts are longer "
                   "than their text encoder's context; the encoder saw only the start, as "
                   "diffusers does (hyperparameters.csv: prompt_tokens_dropped)")


@app.command("import")
def generate_import(
    plan: Annotated[Path, typer.Argument(help="The plan csv")],
    generator: Annotated[str, typer.Option(help="The generator whose images these are")],
    source: Annotated[Path, typer.Option("--from", help="Folder of the images made elsewhere")],
    map_file: Annotated[Path, typer.Option("--map", help="csv: name (the plan's image name), "
                                           "file (the image, relative to --from)")],
    out: Annotated[Path, typer.Option(help="Database folder (as for generate run)")],
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="Follow symbolic links in --from that point outside it")
    ] = False,
) -> None:
    """File images made elsewhere (API models) under the plan's names, checking count, size
    and format; converted to PNG."""
    from aigiqa.generate.importer import import_images

    result = import_images(plan, generator, source, map_file, out,
                           follow_symlinks=follow_symlinks)
    typer.echo(f"{out}: imported {result.imported} images of {generator}, "
               f"{result.skipped} imported before")
    typer.echo(f"tables: {result.tables['ok']} images, {result.tables['failed']} failures "
               "(failures.csv)")
