"""The study web app (FastAPI): subjects rate their trials, the admin follows and exports.

Routes (``{token}``: a subject's personal token, ``{admin}``: the study's admin token):

- ``GET /s/{token}``: the rating page (prompt, image, slider, progress, keyboard);
- ``GET /api/s/{token}/state``: the subject's progress and current trial (JSON);
- ``GET /s/{token}/image/{trial_id}``: the image of one of *this subject's* trials (else 404);
- ``POST /api/s/{token}/ratings``: JSON ``{"trial_id", "value", "submission_id"}`` with the
  header ``X-CSRF-Token``; 200 with ``{"rating", "state"}`` only after COMMIT;
- ``GET /admin/{admin}``: progress per subject, repeat consistency, export links;
  ``GET /admin/{admin}/ratings.csv`` and ``GET /admin/{admin}/mos.csv?method=mos`` (warnings of
  the MOS computation, e.g. a degenerate MLE fit, in the ``X-Aigiqa-Warning`` header);
- ``GET /healthz``.

A paired-comparison study (two images a trial, a choice as the answer) has the same subject
link, state route and admin page, and the routes of :mod:`aigiqa.study.pairs_app`.

Status codes: unknown token or another subject's trial → 404; score off the scale or its step,
bad body → 422; a trial that is not the current one, or a submission id reused for another trial
→ 409; missing/wrong CSRF token, a foreign ``Origin`` or a non-JSON body → 403/415. A replay (same
submission id or an already rated trial) stores nothing and answers 200 with the stored rating.

CSRF: posts are JSON only (``Content-Type: application/json``, which a cross-site HTML form
cannot send) and carry ``X-CSRF-Token`` = HMAC-SHA256(study's server secret, subject id), put in
the page; a request whose ``Origin`` differs from its ``Host`` is refused as well.

Serving: database work runs in at most ``threads`` worker threads per process, each with its own
pooled connection (the store's pool has as many, so no connection is opened and closed under
load); an image of a known trial is answered on the event loop without a thread.
``tune_process=True`` (the uvicorn factory) opens the pool's connections at start-up and moves
the start-up objects out of the garbage collector's reach (``gc.freeze``: a full collection of
them took 60-70 ms here, a latency spike) and gives the BLAS library one thread per call (the
adaptive pair samplers' dense algebra runs in the request threads and a background fit: with
OpenBLAS's default of a thread per core they oversubscribe the cores; one fit then took seconds
instead of 0.85 s at 1,000 images, benchmarks/study_adaptive.py). With
``$AIGIQA_STUDY_TIMING`` set to a folder, every worker appends one line per request to
``timing-<pid>.tsv`` there (kind, status, start, server time, database time), samples its
event-loop lag and logs its garbage collections: the load benchmark's server-side view.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from aigiqa.errors import AigiqaError
from aigiqa.store.study import (
    SUBMISSION_ID_MAX_LENGTH,
    SUBMISSION_ID_PATTERN,
    RatingValueError,
    StudyError,
    StudyInfo,
    StudyStore,
    SubjectRef,
    SubjectState,
    TrialConflict,
    TrialNotFound,
)
from aigiqa.study.export import ratings_csv, repeat_consistency, study_mos
from aigiqa.study.pairs_app import add_pair_routes
from aigiqa.study.timing import TIMING_ENV, TimingLog, TimingMiddleware, loop_lag
from aigiqa.study.web import ImageFiles, check_csrf, csrf_token, script_json

#: Response header of the admin MOS export carrying the computation's warnings (one line).
MOS_WARNING_HEADER = "X-Aigiqa-Warning"

HERE = Path(__file__).parent
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff"}
CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
#: Worker threads (and pooled database connections) per process, by default.
THREADS = 16


class RatingIn(BaseModel):
    """Body of a rating post."""

    model_config = ConfigDict(extra="forbid")

    trial_id: int
    value: float = Field(strict=True, allow_inf_nan=False)
    submission_id: str = Field(min_length=1, max_length=SUBMISSION_ID_MAX_LENGTH,
                               pattern=SUBMISSION_ID_PATTERN)


def _state_json(token: str, state: SubjectState) -> dict[str, Any]:
    trial = None
    if state.trial is not None:
        t = state.trial
        trial = {"id": t.id, "position": t.position, "kind": t.kind, "session": t.session,
                 "prompt": t.prompt, "note": t.note,
                 "image_url": f"/s/{token}/image/{t.id}"}
    return {"done": state.done, "total": state.total, "sessions": state.sessions,
            "finished": state.finished, "session_start": state.session_start, "trial": trial}


def _scale_json(study: StudyInfo) -> dict[str, Any]:
    return {"lo": study.scale_lo, "hi": study.scale_hi, "step": study.scale_step,
            "labels": list(study.labels)}


def create_app(store_url: str | Path, *, images_root: str | Path | None = None,
               threads: int = THREADS, tune_process: bool = False) -> FastAPI:
    """The FastAPI app serving the studies stored at ``store_url``.

    ``images_root`` replaces the database folder recorded at planning time (images moved).
    ``threads``: worker threads for database work (and pooled connections) in this process.
    ``tune_process``: for a server process (see the module doc): warm pool, ``gc.freeze()``.
    """
    if threads < 1:
        raise StudyError(f"threads must be >= 1, not {threads}")
    store = StudyStore(store_url, pool_size=threads)
    if tune_process:  # here, in the process's main thread (from another one it may not hold)
        threadpool_limits(limits=1, user_api="blas")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    timing_dir = os.environ.get(TIMING_ENV) or None
    images = ImageFiles()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        monitor = None
        if tune_process:
            await run_in_threadpool(store.warm_up, threads)
            gc.collect()
            gc.freeze()  # start-up objects: never scanned again by a full collection
        if timing_dir is not None:
            monitor = asyncio.create_task(loop_lag(app.state.timing))
            gc.callbacks.append(app.state.timing.gc_callback)
        try:
            yield
        finally:
            if monitor is not None:
                monitor.cancel()
                gc.callbacks.remove(app.state.timing.gc_callback)
            store.close()

    app = FastAPI(title="aigiqa study", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    app.add_middleware(_SecurityHeaders)
    if timing_dir is not None:
        app.state.timing = TimingLog(Path(timing_dir))
        app.add_middleware(TimingMiddleware, log=app.state.timing)

    def subject_or_404(token: str) -> SubjectRef:
        subject = store.subject_by_token(token)
        if subject is None:
            raise HTTPException(404, "unknown link")
        return subject

    def admin_or_404(token: str) -> StudyInfo:
        study = store.study_by_admin_token(token)
        if study is None:
            raise HTTPException(404, "unknown link")
        return study

    pair_pages = add_pair_routes(app, store, templates, images, images_root, subject_or_404,
                                 admin_or_404)

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/s/{token}", response_class=HTMLResponse)
    def subject_page(request: Request, token: str):
        subject = subject_or_404(token)
        if subject.study.mode == "pairs":
            return pair_pages.page(request, subject, token)
        state = store.state(subject.id)
        boot = {"token": token, "scale": _scale_json(subject.study),
                "state": _state_json(token, state)}
        return templates.TemplateResponse(request, "subject.html", {
            "study": subject.study, "subject": subject, "csrf": csrf_token(subject.study,
                                                                          subject.id),
            "boot": script_json(boot), "labels": subject.study.labels,
            "digit_max": min(9, int(subject.study.scale_hi - subject.study.scale_lo)),
        })

    @app.get("/api/s/{token}/state")
    def subject_state(token: str) -> JSONResponse:
        subject = subject_or_404(token)
        if subject.study.mode == "pairs":
            return JSONResponse(pair_pages.state(subject, token))
        return JSONResponse(_state_json(token, store.state(subject.id)))

    @app.get("/s/{token}/image/{trial_id}")
    async def trial_image(token: str, trial_id: int):
        # Known subject and trial (cached): no thread, no database; else look them up in one.
        found = store.cached_trial(token, trial_id)
        if found is None:
            subject = await run_in_threadpool(subject_or_404, token)
            if subject.study.mode != "ratings":  # pair images: /s/{token}/pair/…
                raise HTTPException(404, "no such trial")
            trial = await run_in_threadpool(store.trial, subject.id, trial_id)
            if trial is None:
                raise HTTPException(404, "no such trial")
        else:
            subject, trial = found
        return images.response(str(images_root or subject.study.database_root),
                               trial.image_path)

    @app.post("/api/s/{token}/ratings")
    def post_rating(request: Request, token: str, body: RatingIn):
        subject = subject_or_404(token)
        check_csrf(request, csrf_token(subject.study, subject.id))
        t0 = time.perf_counter()
        try:
            stored, _, state = store.submit_and_state(subject, body.trial_id, body.value,
                                                      body.submission_id)
        except TrialNotFound as exc:
            raise HTTPException(404, exc.message) from None
        except RatingValueError as exc:
            raise HTTPException(422, exc.message) from None
        except TrialConflict as exc:
            raise HTTPException(409, exc.message) from None
        finally:
            request.scope.setdefault("state", {})["db_s"] = time.perf_counter() - t0
        # Committed: the answer is sent only now.
        return JSONResponse({"rating": stored.as_dict(), "state": _state_json(token, state)})

    @app.get("/admin/{admin}", response_class=HTMLResponse)
    def admin_page(request: Request, admin: str):
        study = admin_or_404(admin)
        if study.mode == "pairs":
            return pair_pages.admin(request, study, admin)
        progress = store.progress(study.id)
        consistency = repeat_consistency(store.ratings_frame(study.id)).set_index("subject")
        rows = []
        for r in progress.itertuples():
            c = consistency.loc[r.subject] if r.subject in consistency.index else None
            rows.append({"subject": r.subject, "done": r.done, "total": r.total,
                         "percent": 100.0 * r.done / r.total if r.total else 0.0,
                         "sessions": f"{r.sessions_done} / {r.sessions}",
                         "last": r.last[:19].replace("T", " "),
                         "repeats": "" if c is None or not c["repeats"] else
                         f"{c['mean_abs_diff']:.2f} ({int(c['repeats'])})"})
        total = int(progress["total"].sum())
        done = int(progress["done"].sum())
        return templates.TemplateResponse(request, "admin.html", {
            "study": study, "rows": rows, "admin": admin, "done": done, "total": total})

    @app.get("/admin/{admin}/ratings.csv")
    def admin_ratings(admin: str):
        study = admin_or_404(admin)
        return Response(ratings_csv(store, study.id), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="study{study.id}-ratings.csv"'})

    @app.get("/admin/{admin}/mos.csv")
    def admin_mos(admin: str, method: str = "mos"):
        study = admin_or_404(admin)
        try:
            result = study_mos(store, study.id, method)
        except StudyError as exc:  # nothing rated yet
            raise HTTPException(409, exc.message) from None
        except AigiqaError as exc:  # compute_mos refused the method or the ratings
            raise HTTPException(422, str(exc)) from None
        text = result.table.to_csv(index=False, float_format="%.6g")
        headers = {
            "Content-Disposition": f'attachment; filename="study{study.id}-mos-{method}.csv"'}
        if result.warnings:  # e.g. a degenerate MLE fit: the CLI prints the same lines
            headers[MOS_WARNING_HEADER] = " | ".join(result.warnings).encode(
                "ascii", "backslashreplace").decode("ascii")
        return Response(text, media_type="text/csv", headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # The default handler echoes the input, which may hold NaN (not encodable as JSON).
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/") or request.url.path.endswith(".csv"):
            return JSONResponse({"detail": exc.detail}, status_code=404)
        return HTMLResponse("<!doctype html><title>Not found</title><h1>Not found</h1>"
                            "<p>This link is not valid. Check the address you were given.</p>",
                            status_code=404)

    return app


class _SecurityHeaders:
    """Pure ASGI middleware: NO_STORE headers and the CSP on every HTTP response, unless the
    route set them (cheaper per request than ``@app.middleware("http")``)."""

    _DEFAULTS = [(k.lower().encode(), v.encode()) for k, v in
                 [*NO_STORE.items(), ("Content-Security-Policy", CSP)]]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self._DEFAULTS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


DB_ENV = "AIGIQA_STUDY_DB"
IMAGES_ROOT_ENV = "AIGIQA_STUDY_IMAGES_ROOT"


def app_from_env() -> FastAPI:
    """uvicorn factory for several workers: the app on $AIGIQA_STUDY_DB
    (and $AIGIQA_STUDY_IMAGES_ROOT if set), tuned for a server process."""
    return create_app(os.environ[DB_ENV], images_root=os.environ.get(IMAGES_ROOT_ENV) or None,
                      tune_process=True)

