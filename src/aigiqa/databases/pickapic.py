"""Pick-a-Pic (Kirstain et al., NeurIPS 2023), read from its Hugging Face parquet shards.

Release (``yuvalkirstain/pickapic_v1`` / ``pickapic_v2``; ``_no_images`` variants lack the
bytes)::

    data/<split>-NNNNN-of-MMMMM.parquet   (or the shards in the folder itself)
        caption, image_0_uid, image_1_uid, model_0, model_1, label_0, label_1 (1 / 0, or
        0.5 / 0.5 for a tie), has_label, are_different, user_id, ranking_id, [jpg_0, jpg_1]

One comparison per row: group = the caption (the prompt), ``a`` / ``b`` = image_0 / image_1
uids, outcome from the labels, annotator = user_id. Images are files ``<uid>.<ext>`` in
``image_dir`` (default ``images/``); :func:`extract_pickapic_images` writes them from the
``jpg_0`` / ``jpg_1`` bytes of the shards. Rules: rows with ``has_label`` false (no preference
recorded) or ``are_different`` false (the same image twice) are left out, each kind counted in a
warning; a labelled row whose labels are not (1, 0), (0, 1) or (0.5, 0.5), or whose two uids are
equal, or a uid shown with two different captions, is an error naming the file and row.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from aigiqa.comparisons import comparisons_frame
from aigiqa.databases.base import DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.preference import PreferenceDatabase
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import raise_problems, reject_options
from aigiqa.errors import DatabaseError
from aigiqa.files import atomic_write

INFO = DatabaseInfo(
    name="pick-a-pic",
    score_range=(0.0, 1.0),
    target_names=("preference",),
    citation=("Y. Kirstain, A. Polyak, U. Singer, S. Matiana, J. Penna, O. Levy. Pick-a-Pic: An "
              "Open Dataset of User Preferences for Text-to-Image Generation. NeurIPS 2023"),
    url="https://huggingface.co/datasets/yuvalkirstain/pickapic_v1",
    description="Real users' choices between two generated images of their prompt (ties allowed).",
)

COLUMNS = ["caption", "image_0_uid", "image_1_uid", "label_0", "label_1", "has_label",
           "are_different"]
OPTIONAL = ["model_0", "model_1", "user_id"]
#: An image id as the releases write it (a UUID): it becomes a file name, so no folder part.
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LABELS = {(1.0, 0.0): "a", (0.0, 1.0): "b", (0.5, 0.5): "tie"}


def shards(root: Path, split: str) -> list[Path]:
    """The parquet shards of ``split`` under ``root/data`` or ``root``, in name order."""
    for folder in (root / "data", root):
        found = sorted(folder.glob(f"{split}-*.parquet")) or sorted(folder.glob(f"{split}.parquet"))
        if found:
            return found
    raise DatabaseError(f"{root}: no parquet shards '{split}-*.parquet' in data/ or the folder")


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatabaseError("pick-a-pic: reading parquet needs pyarrow "
                            "(pip install 'aigiqa[preference]')") from None
    return pq


def _read_shard(path: Path) -> pd.DataFrame:
    pq = _pyarrow()

    try:
        names = pq.read_schema(path).names
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise DatabaseError(f"{path}: missing column(s) {missing} (columns: {names})")
        return pq.read_table(path, columns=COLUMNS + [c for c in OPTIONAL if c in names]
                             ).to_pandas()
    except DatabaseError:
        raise
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DatabaseError(f"{path}: cannot read parquet ({exc})") from None


@register_database("pick-a-pic")
def read_pickapic(root: Path, *, split: str = "test", image_dir: str = "images",
                  image_ext: str = "jpg", follow_symlinks: bool = False,
                  **options) -> PreferenceDatabase:
    """Pick-a-Pic pairs of one split (``test``, ``validation``, ``test_unique``, …)."""
    reject_options("pick-a-pic", options)
    root = Path(root)
    folder = root / image_dir
    inside = ImageRoot(root if not Path(image_dir).is_absolute() else folder,
                       follow_symlinks=follow_symlinks)
    problems: list[str] = []
    records: dict[str, Record] = {}
    rows: list[dict] = []
    unlabelled = same = 0
    for path in shards(root, split):
        frame = _read_shard(path)
        keep = frame["has_label"].astype(bool).to_numpy()
        different = frame["are_different"].astype(bool).to_numpy()
        unlabelled += int((~keep).sum())
        same += int((keep & ~different).sum())
        for i in np.flatnonzero(keep & different):
            row = frame.iloc[i]
            where = f"{path.name} row {i + 1}"
            uids = [str(row["image_0_uid"]), str(row["image_1_uid"])]
            caption = row["caption"]
            try:
                key = (float(row["label_0"]), float(row["label_1"]))
            except (TypeError, ValueError):
                key = (np.nan, np.nan)
            outcome = LABELS.get(key)
            if outcome is None:
                problems.append(f"{where}: labels (label_0, label_1) = {key} are not (1, 0), "
                                "(0, 1) or (0.5, 0.5)")
            if uids[0] == uids[1]:
                problems.append(f"{where}: image {uids[0]!r} is compared with itself "
                                "(are_different is true)")
            if not isinstance(caption, str) or not caption.strip():
                problems.append(f"{where}: missing 'caption'")
                continue
            for k, uid in enumerate(uids):
                rec = records.get(uid)
                if rec is not None:
                    if rec.prompt != caption:
                        problems.append(f"{where}: image {uid!r} has caption {caption!r}, but "
                                        f"{rec.prompt!r} at {rec.source}")
                    continue
                image = inside.path(folder, f"{uid}.{image_ext}", where, problems,
                                    what=f"image_{k}_uid")
                if image is not None:
                    model = row.get(f"model_{k}")
                    records[uid] = Record(name=uid, path=image, prompt=caption,
                                          generator=str(model) if model is not None else None,
                                          hyper={"group": caption}, source=where)
            if outcome is not None and uids[0] != uids[1]:
                user = row.get("user_id")
                rows.append({"group": caption, "a": uids[0], "b": uids[1], "outcome": outcome,
                             "annotator": None if user is None else str(user), "source": where})
    raise_problems(problems, f"{INFO.name} at {root}")
    if unlabelled:
        warnings.warn(f"pick-a-pic {split}: {unlabelled} row(s) without a label (has_label "
                      "false) left out", stacklevel=2)
    if same:
        warnings.warn(f"pick-a-pic {split}: {same} row(s) showing the same image twice "
                      "(are_different false) left out", stacklevel=2)
    if not rows:
        raise DatabaseError(f"{root}: pick-a-pic {split}: no labelled pair of different images")
    return PreferenceDatabase(INFO, list(records.values()), root, comparisons_frame(rows),
                              accuracy_rule="pickscore")


def extract_pickapic_images(root: str | Path, out: str | Path, *, split: str = "test",
                            image_ext: str = "jpg") -> int:
    """Write the ``jpg_0`` / ``jpg_1`` bytes of ``split``'s shards to ``out/<uid>.<ext>``
    (existing files are kept); returns how many files were written."""
    pq = _pyarrow()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in shards(Path(root), split):
        done = 0
        file = pq.ParquetFile(path)
        if not {"jpg_0", "jpg_1"} <= set(file.schema_arrow.names):
            raise DatabaseError(f"{path}: no jpg_0 / jpg_1 columns (a _no_images release)")
        for batch in file.iter_batches(columns=["image_0_uid", "jpg_0", "image_1_uid", "jpg_1"],
                                       batch_size=256):
            data = batch.to_pydict()
            for k in (0, 1):
                for row, (uid, blob) in enumerate(zip(data[f"image_{k}_uid"], data[f"jpg_{k}"],
                                                      strict=True), start=done + 1):
                    if not _UID.match(str(uid)):
                        raise DatabaseError(f"{path} row {row}: image_{k}_uid {uid!r} is not a "
                                            "plain id (letters, digits, '-', '_'); not written")
                    target = out / f"{uid}.{image_ext}"
                    if blob and not target.exists():
                        with atomic_write(target, f"image {uid}") as handle:
                            handle.write(blob)
                        written += 1
            done += batch.num_rows
    return written
