"""The admin view, behind its token (and, when TLS is on, over HTTPS only).

  GET  /admin                             the admin page (asks for the admin token)
  GET  /api/admin/participants            progress table and the counts: started, completed, excluded
                                          (completed, failed the attention checks), declined, in progress
  POST /api/admin/participants            {n} -> new participants with printed links
  GET  /api/admin/export.zip              the export
The token travels as ``Authorization: Bearer <token>``, never in a URL or a cookie.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ferjax.people.experiment.roster import Reject
from ferjax.people.experiment.web import NO_STORE, Settings, body

STATIC = Path(__file__).parent / "static"


def routes(store, design, settings: Settings, admin_token: str) -> list:
    def admin(request):
        # behind a TLS proxy, uvicorn's proxy headers give the scheme the browser used
        if settings.https and request.url.scheme != "https":
            raise Reject(403, "the admin view is served over HTTPS only")
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not given or not secrets.compare_digest(given.encode(), admin_token.encode()):
            raise Reject(401, "admin token missing or wrong")

    async def admin_page(request):
        return FileResponse(STATIC / "admin.html", headers=NO_STORE)

    async def participants(request):
        admin(request)
        if request.method == "POST":
            n = (await body(request, {"n": ("int", True)}))["n"]
            if not 1 <= n <= 1000:
                raise Reject(422, "n must be 1..1000")
            await run_in_threadpool(lambda: store.add_participants(n, design.trials, **settings.schedule))
        rows = await run_in_threadpool(store.progress)
        counts = await run_in_threadpool(store.counts, settings.catch_failures)
        return JSONResponse({"participants": rows, "counts": counts}, headers=NO_STORE)

    async def export(request):
        admin(request)
        from ferjax.people.experiment.export import export_zip
        data = await run_in_threadpool(export_zip, store.path)
        return Response(data, media_type="application/zip", headers={
            **NO_STORE, "Content-Disposition": 'attachment; filename="experiment-export.zip"'})

    return [Route("/admin", admin_page), Route("/api/admin/participants", participants, methods=["GET", "POST"]),
            Route("/api/admin/export.zip", export)]
