"""Import images made elsewhere (an API model, another machine) under a plan's names.

``aigiqa generate import PLAN --generator NAME --from FOLDER --map MAP.csv --out DIR`` files the
images of one generator of the plan into DIR as ``generate run`` would have made them: the
PNG under ``DIR/<split>/<name>``, a log line (so a later ``generate run`` counts them finished)
and the release tables. The map is a csv with the columns ``name`` (the plan's image name) and
``file`` (the source image, relative to FOLDER). Everything is checked before anything is
written, and every fault is reported at once, naming the map file and row:

- count: every planned image of the generator is in the map, once; no name the generator does
  not have in the plan; no source file used twice;
- place: a source path stays inside FOLDER (no absolute path, no ``..``, no symbolic link out;
  :class:`aigiqa.databases.paths.ImageRoot`);
- format: the file decodes (any format Pillow reads, bomb guard on, EXIF orientation applied);
- size: width x height equal the planned ones (plan the sizes the service delivers).

Images are converted to RGB PNG (transparency dropped) and written atomically. An image
imported before from the same file (same sha256) is skipped; one that is already in DIR from
another file, or generated, is a fault (delete its file to import it again).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aigiqa.databases.paths import ImageRoot
from aigiqa.digests import file_sha256
from aigiqa.errors import GenerateError, ImageError
from aigiqa.files import atomic_write, check_folder
from aigiqa.generate import state
from aigiqa.generate.plan import read_plan

__all__ = ["MAP_COLUMNS", "ImportResult", "import_images"]

MAP_COLUMNS = ("name", "file")


@dataclass
class ImportResult:
    """Images written now, skipped as imported before, and the counts of the folder's tables."""

    imported: int = 0
    skipped: int = 0
    tables: dict[str, int] = field(default_factory=dict)


def _read_map(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise GenerateError(f"{path}: map file not found (a csv with columns name, file)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise GenerateError(f"{path}: cannot read the map ({exc})") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in MAP_COLUMNS if c not in table.columns]
    if missing:
        raise GenerateError(f"{path}: missing column(s) {', '.join(missing)} (columns: "
                            f"{', '.join(table.columns)}; the map has name = the plan's image "
                            "name, file = the source image relative to --from)")
    return table


def _png(path: Path, width: int, height: int, where: str, problems: list[str]) -> bytes | None:
    """The source image as RGB PNG bytes, or None after adding a problem."""
    from PIL import Image

    from aigiqa.images import load_image

    try:
        pixels = load_image(path)
    except ImageError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if pixels.shape[:2] != (height, width):
        problems.append(f"{where}: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the plan "
                        f"has {width}x{height} (plan the size the generator delivers)")
        return None
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def import_images(plan_file: str | Path, generator: str, source: str | Path,
                  map_file: str | Path, out: str | Path, *,
                  follow_symlinks: bool = False) -> ImportResult:
    """Import the images of ``generator`` (see the module docstring). GenerateError listing
    every fault (nothing written) when a check fails."""
    plan = read_plan(plan_file)
    if generator not in set(plan["generator"]):
        raise GenerateError(f"{plan_file}: unknown generator {generator!r} (--generator); the "
                            f"plan has {', '.join(dict.fromkeys(plan['generator']))}")
    source = Path(source).expanduser()
    if not source.is_dir():
        raise GenerateError(f"{source}: the source folder (--from) is not a folder")
    map_file = Path(map_file)
    table = _read_map(map_file)
    rows = plan[plan["generator"] == generator].set_index("name", drop=False)
    owner = dict(zip(plan["name"], plan["generator"], strict=True))
    root = ImageRoot(source, follow_symlinks=follow_symlinks)
    problems: list[str] = []
    chosen: dict[str, tuple[Path, str]] = {}  # name → (source path, where)
    seen_files: dict[str, str] = {}
    for i, item in table.iterrows():
        where = f"{map_file} row {int(i) + 2}"
        name, file = str(item["name"]).strip(), str(item["file"]).strip()
        if not name or not file:
            problems.append(f"{where}: empty {'name' if not name else 'file'}")
            continue
        if name not in rows.index:
            other = owner.get(name)
            why = (f"is an image of generator {other!r}, not {generator!r}" if other else
                   "is not in the plan")
            problems.append(f"{where}: name {name!r} {why}")
            continue
        if name in chosen:
            problems.append(f"{where}: duplicate name {name!r} (also at {chosen[name][1]})")
            continue
        path = root.path(source, file, where, problems, what="file")
        if path is None:
            continue
        if not path.is_file():
            problems.append(f"{where}: file {file!r} not found in {source}")
            continue
        real = str(path.resolve())
        if real in seen_files:
            problems.append(f"{where}: file {file!r} is also the image of {seen_files[real]}")
            continue
        seen_files[real] = where
        chosen[name] = (path, where)
    absent = [n for n in rows.index if n not in chosen]
    if absent:
        shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10
                                          else "")
        problems.append(f"{map_file}: {len(absent)} of the {len(rows)} planned images of "
                        f"{generator!r} are not in the map: {shown}")
    out = check_folder(out, "the output folder", "--out")
    with state.folder_lock(out, "import"):
        state.check_plan_copy(out, plan, str(plan_file))
        log = state.read_log(out)
        todo: list[tuple[str, Path, str, str]] = []
        result = ImportResult()
        for name, (path, where) in chosen.items():
            digest = file_sha256(path)
            entry = log.get(name)
            if entry is not None and entry.get("status") == "ok" and \
                    state.image_path(out, rows.loc[name]).is_file():
                if entry.get("source_sha256") == digest:
                    result.skipped += 1
                    continue
                how = "imported from another file" if entry.get("source_sha256") else "generated"
                problems.append(f"{where}: {name!r} is already in {out} ({how}); delete "
                                f"{state.image_path(out, rows.loc[name])} to import it again")
                continue
            todo.append((name, path, where, digest))
        for name, path, where, _ in todo:  # decode all before writing any (not kept: memory)
            _png(path, int(rows.at[name, "width"]), int(rows.at[name, "height"]), where,
                 problems)
        if problems:
            raise GenerateError(f"{map_file}: cannot import the images of {generator!r} "
                                f"({len(problems)} fault(s); nothing imported)", problems)
        (out / state.STATE).mkdir(parents=True, exist_ok=True)
        state.keep_plan_copy(out, plan)
        state.remove_stale_temporaries(out)
        for name, path, where, digest in todo:
            row = rows.loc[name]
            data = _png(path, int(row["width"]), int(row["height"]), where, problems)
            if data is None:  # changed since the check
                raise GenerateError(f"{map_file}: {problems[-1]}")
            with atomic_write(state.image_path(out, row), f"image {name}") as handle:
                handle.write(data)
            state.append_log(out, [{
                "name": name, "status": "ok", "source_file": str(path),
                "source_sha256": digest, "weights_sha256": "", "device": "imported",
                "dtype": "", "versions": "", "seconds": 0.0}])
            result.imported += 1
        result.tables = state.write_tables(out, plan, state.read_log(out))
    return result
