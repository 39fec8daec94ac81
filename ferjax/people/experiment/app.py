"""The experiment's Starlette app: the participant page and its event API, plus the other route groups.

Participant routes (the token in the path is the participant's secret):
  GET  /p/{token}                         the participant page
  GET  /api/p/{token}/state               progress, the current trial, the texts; at the end the debriefing
                                          and the completion URL
  POST /api/p/{token}/environment         {user_agent, screen_w, screen_h, viewport_w, viewport_h, dpr, touch}
  GET  /api/p/{token}/images              the trials whose images the page preloads (all unanswered ones)
  POST /api/p/{token}/start               {event, trial} -> starts (or restarts) the current trial
  POST /api/p/{token}/click               {event, trial, attempt, x, y, t}
  POST /api/p/{token}/choice              {event, trial, attempt, label, t, shown?}
  GET  /api/p/{token}/trial/{idx}/{blur|face}.png   images of the participant's own trials only
  GET  /static/...                        page scripts and styles
The public study link is :mod:`.recruit`'s, the admin view :mod:`.admin`'s, the
jsPsych files :mod:`.vendor`'s. Every refusal is JSON ``{"error": message}``
with a 4xx status and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ferjax.people.experiment import admin, recruit, vendor
from ferjax.people.experiment.db import Store
from ferjax.people.experiment.design import Design
from ferjax.people.experiment.roster import Reject
from ferjax.people.experiment.web import NO_STORE, TOKEN, Settings, body

STATIC = Path(__file__).parent / "static"
ENVIRONMENT = {"user_agent": ("text", True), "screen_w": ("size", True), "screen_h": ("size", True),
               "viewport_w": ("size", True), "viewport_h": ("size", True), "dpr": ("num", True),
               "touch": ("bool", True)}


def create_app(store: Store, design: Design, admin_token: str, settings: Settings | None = None) -> Starlette:
    """The ASGI app serving ``design`` and recording into ``store``; admin routes need ``admin_token``."""
    settings = settings or Settings()
    known: dict[str, int] = {}  # token -> participant id (tokens never change)

    def who(request: Request):
        token = request.path_params["token"]
        if token not in known:
            p = store.participant(token) if TOKEN.fullmatch(token) else None
            if p is None:
                raise Reject(404, "unknown participant link")
            known[token] = p["id"]
        return known[token]

    async def page(request):
        who(request)
        return FileResponse(STATIC / "participant.html", headers=NO_STORE)

    async def state(request):
        pid = who(request)
        s = await run_in_threadpool(store.state, pid)
        extra = {"labels": list(design.labels), "texts": design.texts, "min_viewport": list(settings.min_viewport)}
        if s["phase"] == "done":
            done = await run_in_threadpool(store.completion, pid)
            extra.update(debrief=settings.debrief, completion_url=recruit.completion_url(settings, done))
        return JSONResponse({**s, **extra}, headers=NO_STORE)

    async def environment(request):
        pid = who(request)
        env = await body(request, ENVIRONMENT)
        await run_in_threadpool(store.environment, pid, env)
        w, h = settings.min_viewport
        return JSONResponse({"ok": env["viewport_w"] >= w and env["viewport_h"] >= h}, headers=NO_STORE)

    async def images(request):
        pid = who(request)
        return JSONResponse({"trials": await run_in_threadpool(store.images, pid)}, headers=NO_STORE)

    async def start(request):
        pid = who(request)
        b = await body(request, {"event": ("event", True), "trial": ("int", True)})
        return JSONResponse(await run_in_threadpool(store.start, pid, b["event"], b["trial"]))

    async def click(request):
        pid = who(request)
        b = await body(request, {"event": ("event", True), "trial": ("int", True), "attempt": ("int", True),
                                 "x": ("num", True), "y": ("num", True), "t": ("num", True)})
        return JSONResponse(await run_in_threadpool(store.click, pid, *b.values()))

    async def choice(request):
        pid = who(request)
        b = await body(request, {"event": ("event", True), "trial": ("int", True), "attempt": ("int", True),
                                 "label": ("int", True), "t": ("num", True), "shown": ("num", False)})
        return JSONResponse(await run_in_threadpool(store.choice, pid, *b.values()))

    async def image(request):
        pid = who(request)
        kind = request.path_params["kind"]
        if kind not in ("blur", "face"):
            raise Reject(404, "no such image")
        name, trial_kind = await run_in_threadpool(store.trial_image, pid, request.path_params["idx"])
        # a catch trial shows its face unblurred: the instruction, not the face, is what it tests
        png = await run_in_threadpool(design.image, name, "face" if trial_kind == "catch" else kind)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def rejected(request, exc):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=NO_STORE)

    async def http_error(request, exc):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=NO_STORE)

    p = "/api/p/{token}"
    routes = [Route("/p/{token}", page), Route(f"{p}/state", state),
              Route(f"{p}/environment", environment, methods=["POST"]), Route(f"{p}/images", images),
              Route(f"{p}/start", start, methods=["POST"]), Route(f"{p}/click", click, methods=["POST"]),
              Route(f"{p}/choice", choice, methods=["POST"]), Route(f"{p}/trial/{{idx:int}}/{{kind}}.png", image),
              *recruit.routes(store, design, settings), *admin.routes(store, design, settings, admin_token),
              *(vendor.routes(settings.jspsych) if settings.jspsych else []),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, exception_handlers={Reject: rejected, HTTPException: http_error})
    app.state.settings = settings
    return app
