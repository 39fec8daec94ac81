"""The experiment's Starlette app: participant pages, the event API, the admin view.

Routes (nothing else is served):
  GET  /p/{token}                         the participant page
  GET  /api/p/{token}/state               progress and the current trial
  POST /api/p/{token}/start               {event, trial} -> starts (or restarts) the current trial
  POST /api/p/{token}/click               {event, trial, attempt, x, y, t}
  POST /api/p/{token}/choice              {event, trial, attempt, label, t, shown?}
  GET  /api/p/{token}/trial/{idx}/{blur|face}.png   images of the current trial only
  GET  /admin                             the admin page (asks for the admin token)
  GET  /api/admin/participants            progress table        (Authorization: Bearer <admin token>)
  POST /api/admin/participants            {n} -> new participants (admin)
  GET  /api/admin/export.zip              the export            (admin)
  GET  /static/...                        page scripts and styles
Every refusal is JSON ``{"error": message}`` with a 4xx status and changes nothing.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ferjax.people.experiment.db import Reject, Store
from ferjax.people.experiment.design import Design

STATIC = Path(__file__).parent / "static"
MAX_BODY = 4096
_EVENT = re.compile(r"[A-Za-z0-9_-]{8,64}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
NO_STORE = {"Cache-Control": "no-store"}


def _bad_constant(name):
    raise ValueError(f"{name} is not allowed")


async def _body(request: Request, spec: dict) -> dict:
    """Parse a JSON object whose fields follow ``spec`` (name -> (kind, required)); Reject otherwise."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Reject(413, f"request body is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(raw, parse_constant=_bad_constant)
    except ValueError as err:
        raise Reject(400, f"body is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise Reject(400, "body must be a JSON object")
    if unknown := sorted(set(data) - set(spec)):
        raise Reject(422, f"unknown field(s): {', '.join(unknown)}")
    out = {}
    for name, (kind, required) in spec.items():
        v = data.get(name)
        if v is None:
            if required:
                raise Reject(422, f"field '{name}' is required")
            out[name] = None
        elif kind == "event" and not (isinstance(v, str) and _EVENT.fullmatch(v)):
            raise Reject(422, f"field '{name}' must be 8-64 characters A-Z a-z 0-9 _ -")
        elif kind == "int" and (isinstance(v, bool) or not isinstance(v, int)):
            raise Reject(422, f"field '{name}' must be an integer")
        elif kind == "num" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise Reject(422, f"field '{name}' must be a finite number")
        else:
            out[name] = float(v) if kind == "num" else v
    return out


def create_app(store: Store, design: Design, admin_token: str) -> Starlette:
    """The ASGI app serving ``design`` and recording into ``store``; admin routes need ``admin_token``."""

    known: dict[str, int] = {}  # token -> participant id (tokens never change)

    def who(request: Request):
        token = request.path_params["token"]
        if token not in known:
            p = store.participant(token) if _TOKEN.fullmatch(token) else None
            if p is None:
                raise Reject(404, "unknown participant link")
            known[token] = p["id"]
        return known[token]

    def admin(request: Request):
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not given or not secrets.compare_digest(given.encode(), admin_token.encode()):
            raise Reject(401, "admin token missing or wrong")

    async def page(request):
        who(request)
        return FileResponse(STATIC / "participant.html", headers=NO_STORE)

    async def state(request):
        pid = who(request)
        s = await run_in_threadpool(store.state, pid)
        return JSONResponse({**s, "labels": list(design.labels), "texts": design.texts}, headers=NO_STORE)

    async def start(request):
        pid = who(request)
        b = await _body(request, {"event": ("event", True), "trial": ("int", True)})
        return JSONResponse(await run_in_threadpool(store.start, pid, b["event"], b["trial"]))

    async def click(request):
        pid = who(request)
        b = await _body(request, {"event": ("event", True), "trial": ("int", True), "attempt": ("int", True),
                                  "x": ("num", True), "y": ("num", True), "t": ("num", True)})
        return JSONResponse(await run_in_threadpool(store.click, pid, *b.values()))

    async def choice(request):
        pid = who(request)
        b = await _body(request, {"event": ("event", True), "trial": ("int", True), "attempt": ("int", True),
                                  "label": ("int", True), "t": ("num", True), "shown": ("num", False)})
        return JSONResponse(await run_in_threadpool(store.choice, pid, *b.values()))

    async def image(request):
        pid = who(request)
        kind = request.path_params["kind"]
        if kind not in ("blur", "face"):
            raise Reject(404, "no such image")
        name = await run_in_threadpool(store.current_file, pid, request.path_params["idx"])
        png = await run_in_threadpool(design.image, name, kind)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def admin_page(request):
        return FileResponse(STATIC / "admin.html", headers=NO_STORE)

    async def participants(request):
        admin(request)
        if request.method == "POST":
            n = (await _body(request, {"n": ("int", True)}))["n"]
            if not 1 <= n <= 1000:
                raise Reject(422, "n must be 1..1000")
            cfg = request.app.state.schedule
            await run_in_threadpool(store.add_participants, n, design.trials, **cfg)
        rows = await run_in_threadpool(store.progress)
        return JSONResponse({"participants": rows}, headers=NO_STORE)

    async def export(request):
        admin(request)
        from ferjax.people.experiment.export import export_zip
        data = await run_in_threadpool(export_zip, store.path)
        return Response(data, media_type="application/zip", headers={
            **NO_STORE, "Content-Disposition": 'attachment; filename="experiment-export.zip"'})

    async def rejected(request, exc):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=NO_STORE)

    async def http_error(request, exc):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=NO_STORE)

    p = "/api/p/{token}"
    routes = [Route("/p/{token}", page), Route(f"{p}/state", state), Route(f"{p}/start", start, methods=["POST"]),
              Route(f"{p}/click", click, methods=["POST"]), Route(f"{p}/choice", choice, methods=["POST"]),
              Route(f"{p}/trial/{{idx:int}}/{{kind}}.png", image), Route("/admin", admin_page),
              Route("/api/admin/participants", participants, methods=["GET", "POST"]),
              Route("/api/admin/export.zip", export), Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, exception_handlers={Reject: rejected, HTTPException: http_error})
    app.state.schedule = {"practice": 0, "sessions": 1, "seed": None}
    return app
