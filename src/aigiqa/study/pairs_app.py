"""The study app's paired-comparison routes (added by :func:`aigiqa.study.app.create_app`).

A subject of a pairs study has the same link (``/s/{token}``) and state route as a rater; the
app hands them to :class:`PairPages`. Routes of this module:

- ``GET /s/{token}/pair/{trial_id}/{side}`` (side ``left`` | ``right``): an image of one of
  *this subject's* pair trials (else 404);
- ``POST /api/s/{token}/choices``: JSON ``{"trial_id", "choice", "submission_id",
  "response_ms"?}`` (choice ``left``/``right``, or ``tie`` where allowed; ``response_ms``: the
  time from both images shown to the answer, as the page measured it) with ``X-CSRF-Token``;
  200 with ``{"choice", "state"}`` only after COMMIT;
- ``GET /admin/{admin}/comparisons.csv`` (raw comparisons) and
  ``GET /admin/{admin}/pair-scores.csv?model=bt&ties=rao-kupper&alpha=0.01`` (scaled scores;
  409 while the comparisons cannot be scaled yet, with the reason).

Status codes and CSRF rules are those of ratings (:mod:`aigiqa.study.app`): another subject's
trial → 404; a choice outside the study's set (``tie`` where ties are not allowed included) or a
bad body → 422 naming it; not the current trial, or a reused submission id → 409; a replay →
200 with the stored choice.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from aigiqa.errors import ComparisonError
from aigiqa.store.study import (
    SUBMISSION_ID_MAX_LENGTH,
    SUBMISSION_ID_PATTERN,
    RatingValueError,
    StudyInfo,
    StudyStore,
    SubjectRef,
    SubjectState,
    TrialConflict,
    TrialNotFound,
)
from aigiqa.store.study_pairs import PairStore
from aigiqa.study.pairs_export import (
    DEFAULT_ALPHA,
    comparisons_table,
    pair_scores,
    position_bias,
    repeat_agreement,
)
from aigiqa.study.web import ImageFiles, check_csrf, csrf_token, script_json
from aigiqa.subjective.pairs import MODELS, TIES


class ChoiceIn(BaseModel):
    """Body of a choice post (the choice itself is checked by the store, with its message)."""

    model_config = ConfigDict(extra="forbid")

    trial_id: int
    choice: str = Field(max_length=16)
    submission_id: str = Field(min_length=1, max_length=SUBMISSION_ID_MAX_LENGTH,
                               pattern=SUBMISSION_ID_PATTERN)
    response_ms: int | None = Field(default=None, strict=True)


def pair_state_json(token: str, state: SubjectState, allow_ties: bool) -> dict[str, Any]:
    """A pairs subject's state as the page and the API see it (no image names)."""
    trial = None
    if state.trial is not None:
        t = state.trial
        same = t.left_prompt == t.right_prompt
        trial = {"id": t.id, "position": t.position, "kind": t.kind, "session": t.session,
                 "note": t.note, "prompt": t.left_prompt if same else None,
                 "left_prompt": None if same else t.left_prompt,
                 "right_prompt": None if same else t.right_prompt,
                 "left_url": f"/s/{token}/pair/{t.id}/left",
                 "right_url": f"/s/{token}/pair/{t.id}/right"}
    return {"done": state.done, "total": state.total, "sessions": state.sessions,
            "finished": state.finished, "session_start": state.session_start,
            "allow_ties": allow_ties, "trial": trial}


class PairPages:
    """The pages a pairs study shows in place of the rating ones (subject, state, admin)."""

    def __init__(self, pairs: PairStore, templates):
        self.pairs, self.templates = pairs, templates

    def page(self, request: Request, subject: SubjectRef, token: str):
        boot = {"token": token, "state": self.state(subject, token)}
        return self.templates.TemplateResponse(request, "pairs.html", {
            "study": subject.study, "csrf": csrf_token(subject.study, subject.id),
            "boot": script_json(boot)})

    def state(self, subject: SubjectRef, token: str) -> dict[str, Any]:
        return pair_state_json(token, self.pairs.state(subject.id), subject.study.allow_ties)

    def admin(self, request: Request, study: StudyInfo, admin: str):
        progress = self.pairs.progress(study.id)
        frame = comparisons_table(self.pairs, study.id)
        bias = position_bias(frame)
        repeats = repeat_agreement(frame).set_index("subject")
        rows = []
        for r in progress.itertuples():
            b = bias["subjects"].get(r.subject)
            rep = repeats.loc[r.subject] if r.subject in repeats.index else None
            rows.append({"subject": r.subject, "done": r.done, "total": r.total,
                         "percent": 100.0 * r.done / r.total if r.total else 0.0,
                         "sessions": f"{r.sessions_done} / {r.sessions}",
                         "last": r.last[:19].replace("T", " "),
                         "left": "" if not b or b["left_share"] is None else
                         f"{100 * b['left_share']:.0f} % of {b['left'] + b['right']}",
                         "repeats": "" if rep is None or not rep["repeats"] else
                         f"{int(rep['agreed'])} / {int(rep['repeats'])}"})
        return self.templates.TemplateResponse(request, "pairs_admin.html", {
            "study": study, "rows": rows, "admin": admin, "bias": bias["overall"],
            "settings": self.pairs.settings(study.id), "done": int(progress["done"].sum()),
            "total": int(progress["total"].sum())})


#: The most images one scaling fit of the web export may have (a dense n × n Hessian: 2,000
#: images ≈ 32 MB a matrix); larger studies are scaled by ``aigiqa study export``.
MAX_WEB_FIT_ITEMS = 2_000


def add_pair_routes(app: FastAPI, store: StudyStore, templates, images: ImageFiles,
                    images_root, subject_or_404, admin_or_404) -> PairPages:
    """Add the pair routes to ``app``; returns the pages the app's shared routes hand to."""
    pairs = PairStore(store)

    @app.get("/s/{token}/pair/{trial_id}/{side}")
    async def pair_image(token: str, trial_id: int, side: str):
        if side not in ("left", "right"):
            raise HTTPException(404, "no such image")
        subject = await run_in_threadpool(subject_or_404, token)
        if subject.study.mode != "pairs":
            raise HTTPException(404, "no such trial")
        trial = await run_in_threadpool(pairs.trial, subject.id, trial_id)
        if trial is None:
            raise HTTPException(404, "no such trial")
        return images.response(str(images_root or subject.study.database_root),
                               trial.image_path(side))

    @app.post("/api/s/{token}/choices")
    def post_choice(request: Request, token: str, body: ChoiceIn):
        subject = subject_or_404(token)
        check_csrf(request, csrf_token(subject.study, subject.id))
        t0 = time.perf_counter()
        try:
            stored, _, state = pairs.submit(subject, body.trial_id, body.choice,
                                            body.submission_id, body.response_ms)
        except TrialNotFound as exc:
            raise HTTPException(404, exc.message) from None
        except RatingValueError as exc:  # ChoiceValueError, bad submission id
            raise HTTPException(422, exc.message) from None
        except TrialConflict as exc:
            raise HTTPException(409, exc.message) from None
        finally:
            request.scope.setdefault("state", {})["db_s"] = time.perf_counter() - t0
        # Committed: the answer is sent only now.
        return JSONResponse({"choice": stored.as_dict(), "state": pair_state_json(
            token, state, subject.study.allow_ties)})

    def pairs_study(admin: str) -> StudyInfo:
        study = admin_or_404(admin)
        if study.mode != "pairs":
            raise HTTPException(404, "not a paired-comparison study")
        return study

    @app.get("/admin/{admin}/comparisons.csv")
    def admin_comparisons(admin: str):
        study = pairs_study(admin)
        text = comparisons_table(pairs, study.id).to_csv(index=False)
        return Response(text, media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="study{study.id}-comparisons.csv"'})

    @app.get("/admin/{admin}/pair-scores.csv")
    def admin_pair_scores(admin: str, model: str = "bt", ties: str = "rao-kupper",
                          alpha: float = DEFAULT_ALPHA):
        study = pairs_study(admin)
        if model not in MODELS or ties not in TIES or not math.isfinite(alpha) or alpha < 0:
            raise HTTPException(422, f"model must be one of {list(MODELS)}, ties one of "
                                f"{list(TIES)}, alpha a finite number >= 0")
        frame = comparisons_table(pairs, study.id)
        try:
            scores = pair_scores(frame, pairs.settings(study.id).group_by, model=model,
                                 ties=ties, alpha=alpha, max_items=MAX_WEB_FIT_ITEMS)
        except ComparisonError as exc:  # nothing judged yet, or not scalable yet
            raise HTTPException(409, str(exc)) from None
        return Response(scores.to_csv(index=False, float_format="%.10g"), media_type="text/csv",
                        headers={"Content-Disposition":
                                 f'attachment; filename="study{study.id}-pair-scores.csv"'})

    return PairPages(pairs, templates)
