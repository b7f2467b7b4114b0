"""The study store's set-up writes: a database's images and a planned study, in bulk.

Functions on an open write transaction (:meth:`aigiqa.store.study.StudyStore` holds it): rows go
in chunks of :data:`CHUNK` (below SQLite's oldest limit of 999 parameters per statement).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Connection, insert, select

from aigiqa.chunking import chunks
from aigiqa.store.study_domain import (
    TRIAL_KINDS,
    PlannedTrial,
    StudyError,
    hash_token,
    new_token,
)
from aigiqa.store.study_models import (
    Generator,
    HyperParameter,
    Prompt,
    StudyDatabase,
    StudyImage,
    StudySession,
    Subject,
    Trial,
)
from aigiqa.store.study_models import Study as StudyRow

#: Rows per multi-row statement or IN (...) list.
CHUNK = 500


def store_database(conn: Connection, db) -> int:
    """Store a :class:`~aigiqa.databases.base.Database` (images, prompts, generators,
    hyper-parameters, released main target); returns its id. Known (name, root): reused, new
    images added. StudyError if an image lies outside the database root."""
    root = str(Path(db.root).absolute())
    lo, hi = db.info.score_range
    main = db.info.main_target
    db_id = conn.execute(select(StudyDatabase.id).where(
        StudyDatabase.name == db.info.name, StudyDatabase.root == root)).scalar()
    if db_id is None:
        db_id = conn.execute(insert(StudyDatabase).values(
            name=db.info.name, root=root, score_lo=float(lo), score_hi=float(hi)
        ).returning(StudyDatabase.id)).scalar_one()
    prompt_ids = _ensure_prompts(conn, [r.prompt for r in db if r.prompt])
    gen_ids = _ensure_generators(conn, [r.generator for r in db if r.generator])
    known = set(conn.execute(select(StudyImage.name).where(
        StudyImage.database_id == db_id)).scalars())
    rows = []
    for rec in db:
        if rec.name in known:
            continue
        path = Path(rec.path)
        try:
            rel = path.absolute().relative_to(root).as_posix()
        except ValueError:
            raise StudyError(f"{db.info.name}: image {rec.name!r} at {path} lies "
                             f"outside the database root {root}") from None
        mos = rec.targets.get(main)
        rows.append({
            "database_id": db_id, "name": rec.name, "path": rel,
            "prompt_id": prompt_ids.get(rec.prompt) if rec.prompt else None,
            "generator_id": gen_ids.get(rec.generator) if rec.generator else None,
            "split": rec.split,
            "mos": None if mos is None or not math.isfinite(mos) else float(mos),
        })
    for chunk in chunks(rows, CHUNK):
        conn.execute(insert(StudyImage), list(chunk))
    ids = image_ids(conn, db_id)
    hyper = [{"image_id": ids[rec.name], "name": str(k), "value": str(v)}
             for rec in db if rec.name not in known for k, v in rec.hyper.items()]
    for chunk in chunks(hyper, CHUNK):
        conn.execute(insert(HyperParameter), list(chunk))
    return int(db_id)


def image_ids(conn: Connection, database_id: int) -> dict[str, int]:
    """Image name → id of one stored database."""
    return dict(conn.execute(select(StudyImage.name, StudyImage.id).where(
        StudyImage.database_id == database_id)).all())


def _ensure_prompts(conn: Connection, texts: list[str]) -> dict[str, int]:
    by_hash = {hashlib.sha256(t.encode("utf-8")).hexdigest(): t for t in texts}
    found: dict[str, int] = {}
    for chunk in chunks(list(by_hash), CHUNK):
        for h, pid in conn.execute(select(Prompt.sha256, Prompt.id).where(
                Prompt.sha256.in_(chunk))):
            found[h] = pid
    fresh = [{"sha256": h, "text": t} for h, t in by_hash.items() if h not in found]
    for chunk in chunks(fresh, CHUNK):
        conn.execute(insert(Prompt), list(chunk))
        for h, pid in conn.execute(select(Prompt.sha256, Prompt.id).where(
                Prompt.sha256.in_([r["sha256"] for r in chunk]))):
            found[h] = pid
    return {t: found[h] for h, t in by_hash.items()}


def _ensure_generators(conn: Connection, names: list[str]) -> dict[str, int]:
    wanted = list(dict.fromkeys(names))
    found = dict(conn.execute(select(Generator.name, Generator.id).where(
        Generator.name.in_(wanted))).all()) if wanted else {}
    fresh = [{"name": n} for n in wanted if n not in found]
    if fresh:
        conn.execute(insert(Generator), fresh)
        found = dict(conn.execute(select(Generator.name, Generator.id).where(
            Generator.name.in_(wanted))).all())
    return found


def store_study(conn: Connection, *, name: str, database_id: int,
                scale: tuple[float, float, float], labels: Sequence[str], design: str,
                ratings_per_image: int, session_size: int, n_training: int, n_repeats: int,
                seed: int, plan: dict[str, list[PlannedTrial]]
                ) -> tuple[int, str, dict[str, str]]:
    """Store a planned study; ``plan`` maps subject label → trials in order. Returns (study id,
    admin token, {subject label: token}); only the tokens' hashes are stored."""
    admin_token = new_token()
    tokens = {label: new_token() for label in plan}
    lo, hi, step = scale
    study_id = conn.execute(insert(StudyRow).values(
        name=name, database_id=database_id, scale_lo=lo, scale_hi=hi, scale_step=step,
        labels=json.dumps(list(labels)), design=design,
        ratings_per_image=ratings_per_image, session_size=session_size,
        n_training=n_training, n_repeats=n_repeats, seed=seed,
        admin_token_hash=hash_token(admin_token), csrf_key=secrets.token_hex(32),
    ).returning(StudyRow.id)).scalar_one()
    ids = image_ids(conn, database_id)
    for label, trials in plan.items():
        subject_id = conn.execute(insert(Subject).values(
            study_id=study_id, label=label, token_hash=hash_token(tokens[label])
        ).returning(Subject.id)).scalar_one()
        rows, sessions = [], {}
        for pos, t in enumerate(trials):
            if t.kind not in TRIAL_KINDS:
                raise StudyError(f"trial kind {t.kind!r} is not one of {TRIAL_KINDS}")
            if t.image not in ids:
                raise StudyError(f"planned image {t.image!r} is not in the database")
            rows.append({"subject_id": subject_id, "image_id": ids[t.image],
                         "position": pos, "kind": t.kind, "session": t.session,
                         "note": t.note})
            first, _ = sessions.get(t.session, (pos, pos))
            sessions[t.session] = (first, pos)
        for chunk in chunks(rows, CHUNK):
            conn.execute(insert(Trial), list(chunk))
        if sessions:  # none for a subject whose trials are all chosen later (adaptive pairs)
            conn.execute(insert(StudySession), [
                {"subject_id": subject_id, "number": n, "first_position": a,
                 "last_position": b} for n, (a, b) in sorted(sessions.items())])
    return int(study_id), admin_token, tokens
