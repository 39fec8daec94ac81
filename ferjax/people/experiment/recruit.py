"""The public study link: recruitment platforms send everyone to one URL with their own id in it.

  GET  /s/{study}?PROLIFIC_PID=..&STUDY_ID=..&SESSION_ID=..   (Prolific)   or  ?pid=..   (any other platform)
       new id        -> the consent form (nothing is stored before the participant agrees)
       known id      -> back to their own page /p/<token>, where they resume at their current trial
       completed     -> a polite "already done" page (with the completion link again); never run again
       no id         -> the participant cookie set on consent, else a page asking to use the platform's link
  POST /api/s/{study}/consent   {decision: agree|decline, PROLIFIC_PID?, STUDY_ID?, SESSION_ID?, pid?}
       agree   -> the participant (made once per platform id), {token, url} and an HttpOnly cookie,
                  Secure when TLS is on
       decline -> one more in the declined count; nothing else is stored, {declined: true}

At the end the participant page redirects to ``completion_url(...)``: the
configured template with the completion code, or the failed-attention code
for participants who failed ``catch_failures`` catch trials or more, decided
here from the stored answers (never by the browser).
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Route

from ferjax.people.experiment.roster import Reject
from ferjax.people.experiment.web import NO_STORE, PLATFORM_ID, TOKEN, Settings, body

COOKIE = "ferjax_participant"
PAGE = (Path(__file__).parent / "static" / "page.html").read_text(encoding="utf-8")


def completion_url(settings: Settings, done: dict) -> str | None:
    """Where a completed participant goes next (None: stay; printed-link participants always stay)."""
    if done["completed_at"] is None or done["platform"] == "link":
        return None
    failed = settings.catch_failures > 0 and done["catch_failed"] >= settings.catch_failures
    code = settings.failed_code if failed and settings.failed_code else settings.completion_code
    if code is None:
        return None
    return settings.completion_url.replace("{code}", quote(code, safe="")).replace(
        "{pid}", quote(done["platform_pid"] or "", safe=""))


def page(title: str, content: str, status: int = 200, script: str | None = None) -> HTMLResponse:
    """A participant-facing page: ``content`` is HTML (the lab's own, or escaped text)."""
    tag = f'<script src="/static/{script}"></script>' if script else ""
    text = PAGE.replace("{title}", html.escape(title)).replace("{script}", tag).replace("{content}", content)
    return HTMLResponse(text, status_code=status, headers=NO_STORE)


def identify(params) -> tuple | None:
    """``(platform, platform id, study id, session id)`` from a link's query or a consent body; None: no id.
    Reject(400) for a malformed one."""
    def valid(name):
        v = params.get(name)
        if v is not None and not (isinstance(v, str) and PLATFORM_ID.fullmatch(v)):
            raise Reject(400, f"malformed {name} in the link")
        return v
    if params.get("PROLIFIC_PID") is not None:
        return "prolific", valid("PROLIFIC_PID"), valid("STUDY_ID"), valid("SESSION_ID")
    if params.get("pid") is not None:
        return "generic", valid("pid"), None, None
    return None


def routes(store, design, settings: Settings) -> list:
    texts = design.texts

    def check_study(request):
        if settings.study is None or request.path_params["study"] != settings.study:
            raise Reject(404, "no such study")

    def done_page(row):
        url = completion_url(settings, store.completion(row["id"]))
        link = f'<p><a id="complete" href="{html.escape(url)}">{html.escape(texts["finish"])}</a></p>' if url else ""
        return page(texts["title"], f'<p id="already">{html.escape(texts["already_done"])}</p>{link}')

    async def study_link(request):
        check_study(request)
        try:
            who = identify(request.query_params)
        except Reject as err:
            return page(texts["title"], f"<p>{html.escape(err.message)}. {html.escape(texts['missing_id'])}</p>", 400)
        if who is None:
            token = request.cookies.get(COOKIE, "")
            row = store.participant(token) if TOKEN.fullmatch(token) else None
            if row is None:
                return page(texts["title"], f'<p id="missing">{html.escape(texts["missing_id"])}</p>', 400)
            row = {"id": row["id"], "token": token}
        else:
            row = await run_in_threadpool(store.find, who[0], who[1], who[2])
            if row is None:
                buttons = (f'<div class="choices"><button id="agree" type="button">{html.escape(texts["agree"])}'
                           f'</button><button id="decline" type="button">{html.escape(texts["decline"])}</button></div>'
                           f'<p id="declined" hidden>{html.escape(texts["declined"])}</p>')
                return page(texts["title"], f'<div id="consent">{settings.consent}</div>{buttons}',
                            script="consent.js")
        if store.completion(row["id"])["completed_at"] is not None:
            return done_page(row)
        return RedirectResponse(f"/p/{row['token']}", status_code=303, headers=NO_STORE)

    async def consent(request):
        check_study(request)
        b = await body(request, {"decision": (("agree", "decline"), True), "PROLIFIC_PID": ("id", False),
                                 "STUDY_ID": ("id", False), "SESSION_ID": ("id", False), "pid": ("id", False)})
        if b["decision"] == "decline":
            await run_in_threadpool(store.decline)
            return JSONResponse({"declined": True}, headers=NO_STORE)
        who = identify(b)
        if who is None:
            raise Reject(422, "agreeing needs the platform's participant id (PROLIFIC_PID or pid)")
        row = await run_in_threadpool(store.enrol, design.trials, settings.schedule, *who)
        res = JSONResponse({"token": row["token"], "url": f"/p/{row['token']}"}, headers=NO_STORE)
        res.set_cookie(COOKIE, row["token"], max_age=90 * 86400, path="/", httponly=True, samesite="lax",
                       secure=settings.https)
        return res

    return [Route("/s/{study}", study_link), Route("/api/s/{study}/consent", consent, methods=["POST"])]
