"""jsPsych's files and ferjax's jsPsych plugin, served from the lab's npm install (``--jspsych DIR``).

jsPsych is never copied into ferjax: ``npm ci`` in DIR (the repository's
``js/`` folder, with its ``package.json`` and lockfile) installs the pinned
versions. Only these paths under DIR are served, at ``/jspsych/<path>``:

  src/*.js, example/*                          ferjax's plugin, its import shim, the example timeline
  node_modules/jspsych/{dist,css}/*            jsPsych itself (browser builds and the stylesheet)
  node_modules/@jspsych/<plugin>/dist/*        jsPsych's own plugins
Everything else, and any path that leaves DIR, is a 404.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import Route

from ferjax.people.experiment.roster import Reject
from ferjax.plumbing.errors import InputError

ALLOWED = re.compile(r"(src/[\w.-]+\.js|example/[\w.-]+|node_modules/jspsych/(dist|css)/[\w.-]+"
                     r"|node_modules/@jspsych/[\w-]+/dist/[\w.-]+)")
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".map": "application/json"}


def check(folder) -> Path:
    """The folder, if ``npm ci`` has installed jsPsych there; InputError otherwise."""
    folder = Path(folder).resolve()
    if not (folder / "package.json").is_file():
        raise InputError(folder, None, "no package.json here", "pass the repository's js/ folder")
    if not (folder / "node_modules" / "jspsych" / "dist").is_dir():
        raise InputError(folder, None, "jsPsych is not installed", f"run: npm ci --prefix {folder}")
    return folder


def routes(folder: Path) -> list:
    async def file(request):
        rel = request.path_params["path"]
        path = (folder / rel).resolve()
        if not ALLOWED.fullmatch(rel) or folder not in path.parents or not path.is_file():
            raise Reject(404, "not found")
        return FileResponse(path, media_type=TYPES.get(path.suffix), headers={"Cache-Control": "no-cache"})

    return [Route("/jspsych/{path:path}", file)]
