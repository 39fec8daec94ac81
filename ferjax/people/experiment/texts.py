"""What the participant pages say: the short texts (translatable) and the lab's own pages.

``TEXTS`` are the default English strings; ``read_texts`` overrides any of
them from a JSON object (or takes a plain-text file as the instructions).
The consent form and the debriefing are the lab's own pages, read by
``read_page`` from an ``.html`` file (used as written) or a Markdown or plain
text file (a small subset of Markdown: headings, lists, bold, italics, links,
paragraphs; everything else is shown as text).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from ferjax.plumbing.errors import InputError

TEXTS = {
    "title": "Facial expressions",
    "instructions": ("You will see faces hidden under a blur. Click (or tap) on the face to uncover "
                     "small parts of it; you may uncover as much as you need. Then choose which of the "
                     "two expressions the face shows. There is no time limit.\n\n"
                     "First comes a short practice block."),
    "start": "Start the practice",
    "practice": "Practice {n} of {m}",
    "session": "Session {s} of {S}, trial {n} of {m}",
    "practice_done": "The practice is over. The experiment starts now.",
    "break": "Session {s} of {S} is done. Take a break, then continue when you are ready.",
    "continue": "Continue",
    "done": "Thank you! You have finished the experiment. You can close this page.",
    "saving": "Saving...",
    "offline": "Connection lost; retrying. Please keep this page open.",
    "error": "Something went wrong: {message}. Please reload the page.",
    "agree": "I agree to take part",
    "decline": "I do not agree",
    "declined": ("You chose not to take part. Nothing about you has been stored. You can close this page "
                 "(on Prolific, please return the study)."),
    "too_small": ("This window is too small for the study ({w} x {h} pixels; it needs at least {W} x {H}). "
                  "Please enlarge the window, or turn your phone sideways."),
    "loading": "Loading the images: {n} of {m}",
    "catch": "Attention check: whatever the face shows, press \u201c{label}\u201d.",
    "finish": "Finish and return to the recruitment site",
    "already_done": "You have already completed this study. Thank you for taking part!",
    "missing_id": ("This link does not say who you are. Please open the study again from the recruitment "
                   "site's link."),
}


def read_texts(path) -> dict:
    """Page texts: a ``.json`` object overriding any of TEXTS' keys, or plain text = the instructions."""
    path, texts = Path(path), dict(TEXTS)
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() != ".json":
        texts["instructions"] = raw.strip()
        return texts
    try:
        obj = json.loads(raw)
    except ValueError as err:
        raise InputError(path, None, f"not valid JSON: {err}") from None
    bad = sorted(set(obj) - set(TEXTS)) if isinstance(obj, dict) else ["(not an object)"]
    if bad or not all(isinstance(v, str) for v in obj.values()):
        raise InputError(path, None, f"unknown keys or non-string values: {', '.join(bad)}",
                         f"keys: {', '.join(TEXTS)}")
    return {**texts, **obj}


def _inline(text: str) -> str:
    """Escape, then **bold**, *italics* and [links](https://...) (only http(s) and mailto targets)."""
    s = html.escape(text, quote=True)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"\*(.+?)\*", r"<em>\1</em>", s)
    return re.sub(r"\[([^\]]+)\]\(((?:https?://|mailto:)[^)\s]+)\)", r'<a href="\2">\1</a>', s)


def markdown(text: str) -> str:
    """The Markdown subset described in the module docstring, as HTML."""
    out, para, items = [], [], []

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        s = line.strip()
        if heading := re.match(r"(#{1,3})\s+(.*)", s):
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level + 1}>{_inline(heading.group(2))}</h{level + 1}>")
        elif item := re.match(r"[-*]\s+(.*)", s):
            if para:
                flush()
            items.append(item.group(1))
        elif not s:
            flush()
        elif items:  # a continuation line of the last list item
            items[-1] += " " + s
        else:
            para.append(s)
    flush()
    return "\n".join(out)


def read_page(path) -> str:
    """A consent or debriefing page as HTML: ``.html``/``.htm`` as written, anything else as Markdown."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, None, f"cannot read: {err}") from None
    if not raw.strip():
        raise InputError(path, None, "the page is empty")
    return raw if path.suffix.lower() in (".html", ".htm") else markdown(raw)
