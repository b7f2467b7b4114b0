"""Latency of choosing the next pair in an adaptive pairs study, through the store layer.

Makes a SQLite store with one adaptive study of ``--items`` images in one group
(``group_by="all"``, images not read), writes ``--history`` choices of earlier subjects straight
into the tables (random pairs, outcomes of a simulated rater: latent quality + Gaussian noise),
then times, on a fresh :class:`~aigiqa.store.study_pairs.PairStore` (a server just started):

- ``start``: the first state call, which builds the group's sampler from the stored choices
  (a Laplace fit of the choices up to its checkpoint, then online updates), chooses and
  stores the trial;
- ``next``: ``--answers`` answers of ``--subjects`` new subjects in turn (``--pause`` s
  apart), each :meth:`PairStore.submit` (store the choice, fold it in, choose and store the
  next trial) — the call a rater's answer waits for; p50 / p99 / max, and how many of them
  switched the sampler to a newer fit (made in the background:
  :mod:`aigiqa.store.adaptive_trials`); and the sampler's own share: the mean time of its
  online update and of its ``next_pair`` (the rest is the store: SQL, commits, the plan).

BLAS threads: ``--blas-threads`` (default 1). On a shared machine OpenBLAS's default (one
thread per core) made one 300 × 300 solve take 0.6 s instead of a few ms (threads spinning for
cores other processes hold).

    PYTHONPATH=src .venv/bin/python benchmarks/study_adaptive.py [--items 1000] [--history 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.store import adaptive_trials
from aigiqa.store.study import StudyStore
from aigiqa.store.study_models import PairChoice, PairTrial, Subject, Trial
from aigiqa.store.study_pairs import PairStore
from aigiqa.store.study_setup import image_ids
from aigiqa.study.plan_pairs import create_pair_study


def database(root: Path, n: int) -> Database:
    records = [Record(name=f"im{i:05d}.png", path=root / f"im{i:05d}.png", prompt=None,
                      generator=None, targets={}) for i in range(n)]
    return Database(DatabaseInfo(name="bench", score_range=(0.0, 5.0), target_names=("mos",)),
                    records, root)


def write_history(url: str, study_id: int, db: Database, n: int, per_subject: int,
                  rng: np.random.Generator) -> None:
    """``n`` answered trials of the first subjects (``per_subject`` each), as the app stores
    them."""
    quality = rng.normal(0, 1.5, len(db))
    with StudyStore(url) as store, store._write() as conn:
        ids = image_ids(conn, _database_id(conn, study_id))
        image = [ids[r.name] for r in db]
        subjects = list(conn.execute(select(Subject.id).where(
            Subject.study_id == study_id).order_by(Subject.id)).scalars())
        now = datetime.now(UTC)
        done = 0
        for sid in subjects:
            if done >= n:
                break
            k = min(per_subject, n - done)
            seen: set[tuple[int, int]] = set()
            for pos in range(k):
                while True:
                    a, b = (int(x) for x in rng.choice(len(db), 2, replace=False))
                    if (min(a, b), max(a, b)) not in seen:
                        seen.add((min(a, b), max(a, b)))
                        break
                tid = conn.execute(insert(Trial).values(
                    subject_id=sid, image_id=image[a], position=pos, kind="rating", session=1,
                    note=None).returning(Trial.id)).scalar_one()
                conn.execute(insert(PairTrial).values(trial_id=tid, right_image_id=image[b]))
                left_wins = quality[a] + rng.normal() > quality[b] + rng.normal()
                conn.execute(insert(PairChoice).values(
                    trial_id=tid, subject_id=sid, left_image_id=image[a],
                    right_image_id=image[b], choice="left" if left_wins else "right",
                    kind="rating", session=1, submission_id=f"h{tid}", response_ms=900,
                    created_at=now))
            done += k


def _database_id(conn, study_id: int) -> int:
    from aigiqa.store.study_models import Study

    return conn.execute(select(Study.database_id).where(Study.id == study_id)).scalar_one()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--history", type=int, default=2000, help="choices stored before")
    parser.add_argument("--subjects", type=int, default=10, help="new subjects timed")
    parser.add_argument("--answers", type=int, default=200, help="timed answers in all")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds between answers (0: back to back, a saturation test; "
                        "the sampler's background fits then compete for the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        return run(args)


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    per_subject = 100
    old = -(-args.history // per_subject)
    budget = max(per_subject, -(-args.answers // args.subjects) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "bench.sqlite")
        db = database(Path(tmp) / "img", args.items)
        st = create_pair_study(url, db, subjects=old + args.subjects, training=0, seed=args.seed,
                               adaptive=True, pairs_per_subject=budget, group_by="all",
                               check_images=False)
        write_history(url, st.id, db, args.history, per_subject, rng)
        with StudyStore(url) as store:
            pairs = PairStore(store)
            subjects = [store.subject_by_token(s.token) for s in st.subjects[old:]]
            t0 = time.perf_counter()
            states = {s.id: pairs.state(s.id) for s in subjects[:1]}
            start = time.perf_counter() - t0
            for s in subjects[1:]:
                states[s.id] = pairs.state(s.id)
            times, rebuilds = [], 0
            for n in range(args.answers):
                s = subjects[n % len(subjects)]
                trial = states[s.id].trial
                group = pairs.adaptive._studies[st.id].groups[0]
                before = group.base(len(group.choices))
                t0 = time.perf_counter()
                _, _, states[s.id] = pairs.submit(s, trial.id, "left" if rng.random() < 0.5
                                                  else "right", f"b{n}")
                times.append(time.perf_counter() - t0)
                time.sleep(args.pause)
                rebuilds += group.base(len(group.choices)) != before
            sampler = group.sampler()  # the sampler alone, after the run (its state is spent)
            t0 = time.perf_counter()
            for _ in range(20):
                sampler.next_pair()
            choose_ms = (time.perf_counter() - t0) * 50
            t0 = time.perf_counter()
            for k in range(20):
                sampler.update(sampler.items[k], sampler.items[k + 1], "a")
            update_ms = (time.perf_counter() - t0) * 50
    ms = np.array(times) * 1000
    print(f"adaptive pairs, {args.items} items in one group, {args.history} stored choices, "
          f"SQLite; checkpoints every max({max(10, args.items // 4)}, "
          f"{adaptive_trials.REFIT:.0%}) choices; {args.pause} s between answers")
    print(f"  start (build the sampler, choose, store): {start * 1000:.0f} ms")
    print(f"  next  (submit + fold in + choose + store), {len(ms)} answers: "
          f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
          f"max {ms.max():.0f} ms; {rebuilds} switched to a newer fit")
    print(f"  of which the sampler: update {update_ms:.1f} ms, next_pair {choose_ms:.1f} ms "
          "(mean of 20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
