"""What every route shares: the study's settings, strict JSON bodies, refusals as JSON.

A request body is one JSON object whose fields follow a spec (name -> kind,
required); anything else (too large, not JSON, NaN, unknown or mistyped
fields) is refused with a 4xx and changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from ferjax.people.experiment.roster import Reject

MAX_BODY = 4096
NO_STORE = {"Cache-Control": "no-store"}
PROLIFIC = "https://app.prolific.com/submissions/complete?cc={code}"
EVENT = re.compile(r"[A-Za-z0-9_-]{8,64}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
PLATFORM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")   # Prolific's ids are 24 hex digits; SONA's are numbers


@dataclass
class Settings:
    """How one server runs its study (``ferjax experiment serve``'s options)."""

    schedule: dict = field(default_factory=lambda: {"practice": 0, "sessions": 1, "seed": None, "catch_every": 0})
    study: str | None = None            # the public study link /s/<study>; None: printed links only
    consent: str | None = None          # HTML of the consent form (the study link needs one)
    debrief: str | None = None          # HTML of the debriefing shown at the end
    completion_url: str = PROLIFIC      # template with {code} and {pid}
    completion_code: str | None = None  # None: no redirect at the end
    failed_code: str | None = None      # for participants who failed `catch_failures` catch trials or more
    catch_failures: int = 2
    https: bool = False                 # TLS is on (own certificate or an HTTPS proxy): Secure cookies, HTTPS-only admin
    min_viewport: tuple = (360, 460)    # the room the page needs: the 256-px frame, its buttons and texts
    jspsych: Path | None = None         # the folder holding package.json and node_modules of the jsPsych plugin


def _bad_constant(name):
    raise ValueError(f"{name} is not allowed")


def _field(name, kind, v):
    """``v`` checked against ``kind``; Reject(422) naming the field otherwise."""
    if kind == "event" and not (isinstance(v, str) and EVENT.fullmatch(v)):
        raise Reject(422, f"field '{name}' must be 8-64 characters A-Z a-z 0-9 _ -")
    if kind == "id" and not (isinstance(v, str) and PLATFORM_ID.fullmatch(v)):
        raise Reject(422, f"field '{name}' must be 1-64 characters A-Z a-z 0-9 _ -")
    if kind == "text" and not (isinstance(v, str) and len(v) <= 512 and v.isprintable()):
        raise Reject(422, f"field '{name}' must be printable text of at most 512 characters")
    if kind == "bool" and not isinstance(v, bool):
        raise Reject(422, f"field '{name}' must be true or false")
    if kind in ("int", "size") and (isinstance(v, bool) or not isinstance(v, int)):
        raise Reject(422, f"field '{name}' must be an integer")
    if kind == "size" and not 0 <= v <= 100_000:
        raise Reject(422, f"field '{name}' must be 0..100000")
    if kind == "num" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
        raise Reject(422, f"field '{name}' must be a finite number")
    if isinstance(kind, tuple) and v not in kind:
        raise Reject(422, f"field '{name}' must be one of {', '.join(kind)}")
    return float(v) if kind == "num" else v


async def body(request: Request, spec: dict) -> dict:
    """Parse a JSON object whose fields follow ``spec`` (name -> (kind, required)); Reject otherwise.

    Kinds: event, id, text, bool, int, size (0..100000), num (finite), or a tuple of allowed strings.
    """
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
        if data.get(name) is None:
            if required:
                raise Reject(422, f"field '{name}' is required")
            out[name] = None
        else:
            out[name] = _field(name, kind, data[name])
    return out
