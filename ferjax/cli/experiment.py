"""``ferjax experiment``: serve the browser experiment, add participants, export and back up the logs."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import click

from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors

_PATH = functools.partial(click.Path, path_type=Path)
_FILE = _PATH(exists=True, dir_okay=False)
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def experiment():
    """Run the reveal-by-click 2AFC experiment in the browser and export its logs.

    \b
      serve   start the web server (public study link /s/<study>, printed links /p/<token>, admin view /admin)
      add     create participants in an experiment database and print their links
      export  write the reference click-log layout (+ tidy tables, + a Psych-DS dataset) from the database
      backup  copy the database while the server runs (SQLite's online backup)
    """


def _schedule_options(fn):
    for opt in reversed([
        click.option("--practice", type=click.IntRange(0), default=5, show_default=True,
                     help="Practice trials (drawn from the stimuli; never exported)."),
        click.option("--sessions", type=click.IntRange(1), default=4, show_default=True,
                     help="Sessions the stimuli are split into, with a break between them."),
        click.option("--catch-every", type=click.IntRange(0), default=0, show_default=True,
                     help="One attention check (catch trial) in every N main trials, at a random place (0: none)."),
        click.option("--seed", type=int, default=None,
                     help="Base seed for the participants' schedules (default: random; each seed is stored)."),
    ]):
        fn = opt(fn)
    return fn


def _size(text):
    if not (m := re.fullmatch(r"(\d+)x(\d+)", text or "")):
        raise click.BadParameter(f"{text!r} is not WIDTHxHEIGHT, e.g. 360x460")
    return int(m.group(1)), int(m.group(2))


def _settings(study, consent, debrief, completion_url, completion_code, failed_code, catch_failures,
              min_viewport, certfile, keyfile, https_proxy, jspsych, schedule):
    """The server's Settings from serve's options; InputError for a combination that cannot work."""
    import ssl

    from ferjax.people.experiment import vendor
    from ferjax.people.experiment.texts import read_page
    from ferjax.people.experiment.web import PLATFORM_ID, Settings

    if study is not None and not PLATFORM_ID.fullmatch(study):
        raise InputError("--study", None, "use 1-64 characters A-Z a-z 0-9 _ -")
    if study is not None and consent is None:
        raise InputError("--study", None, "the public study link needs a consent form: pass --consent FILE")
    if (certfile is None) != (keyfile is None):
        raise InputError("--certfile" if certfile is None else "--keyfile", None, "HTTPS needs both files")
    if certfile is not None:
        try:  # load them now, so that a wrong file is a one-line error and not a traceback from uvicorn
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile)
        except (ssl.SSLError, OSError) as err:
            raise InputError(certfile, None, f"cannot load the certificate with key {keyfile}: {err}") from None
    if "{code}" not in completion_url and "{pid}" not in completion_url:
        raise InputError("--completion-url", None, "the template needs {code} (or {pid})")
    return Settings(schedule=schedule, study=study, consent=read_page(consent) if consent else None,
                    debrief=read_page(debrief) if debrief else None, completion_url=completion_url,
                    completion_code=completion_code, failed_code=failed_code, catch_failures=catch_failures,
                    https=certfile is not None or https_proxy, min_viewport=_size(min_viewport),
                    jspsych=vendor.check(jspsych) if jspsych else None)


@experiment.command()
@click.option("--stimuli", type=_PATH(exists=True, file_okay=False), required=True,
              help="Stimulus folder <label>/<name>.png|jpg (e.g. work/stimuli).")
@click.option("--trials", type=_FILE, required=True,
              help="trials.csv with filename,true,foil (as `ferjax stimuli` writes it).")
@click.option("--db", type=_PATH(dir_okay=False), required=True, help="SQLite database (created if missing).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--admin-token", envvar="FERJAX_ADMIN_TOKEN", required=True,
              help="Secret for the admin view /admin (or env FERJAX_ADMIN_TOKEN).")
@click.option("--participants", type=click.IntRange(0), default=0, show_default=True,
              help="Make sure at least this many participants exist; new printed links are printed.")
@click.option("--instructions", type=_FILE,
              help="Instructions as plain text, or a .json object overriding any page text (for translations).")
@click.option("--labels", type=_FILE,
              help="Button names of labels 0..7, one per line (default: AffectNet's English names).")
@click.option("--base-url", default=None, help="Public URL prefix for the printed links (default http(s)://HOST:PORT).")
@click.option("--study", default=None, help="Open the public study link /s/STUDY (recruitment platforms).")
@click.option("--consent", type=_FILE, help="Consent form, .html or Markdown; shown before anything is stored.")
@click.option("--debrief", type=_FILE, help="Debriefing page, .html or Markdown; shown at the end.")
@click.option("--completion-code", default=None, help="Code sent to the completion URL at the end (e.g. Prolific's).")
@click.option("--failed-attention-code", "failed_code", default=None,
              help="Code for participants who failed --catch-failures attention checks or more.")
@click.option("--catch-failures", type=click.IntRange(1), default=2, show_default=True,
              help="Failed attention checks that earn the failed-attention code.")
@click.option("--completion-url", default="https://app.prolific.com/submissions/complete?cc={code}",
              show_default=True, help="Where the study link's participants go at the end; {code} and {pid} are filled in.")
@click.option("--min-viewport", default="360x460", show_default=True,
              help="Smallest window (CSS px) the page runs in; smaller ones are asked to enlarge or rotate.")
@click.option("--certfile", type=_FILE, help="TLS certificate (PEM): serve HTTPS.")
@click.option("--keyfile", type=_FILE, help="TLS private key (PEM) of --certfile.")
@click.option("--behind-https-proxy", "https_proxy", is_flag=True,
              help="A reverse proxy on this machine terminates TLS: Secure cookies, HTTPS-only admin.")
@click.option("--jspsych", type=_PATH(exists=True, file_okay=False),
              help="Serve jsPsych and ferjax's plugin from this npm folder (the repository's js/) at /jspsych/.")
@_schedule_options
@_user_errors
def serve(stimuli, trials, db, host, port, admin_token, participants, instructions, labels, base_url, study, consent,
          debrief, completion_code, failed_code, catch_failures, completion_url, min_viewport, certfile, keyfile,
          https_proxy, jspsych, practice, sessions, catch_every, seed):
    """Serve the experiment. Every click and choice is committed to DB before it is acknowledged."""
    import uvicorn

    from ferjax.people.experiment.app import create_app
    from ferjax.people.experiment.db import Store
    from ferjax.people.experiment.design import LABELS, Design, read_labels, read_trials
    from ferjax.people.experiment.texts import TEXTS, read_texts

    if len(admin_token) < 8:
        raise InputError("--admin-token", None, "use at least 8 characters")
    cfg = {"practice": practice, "sessions": sessions, "seed": seed, "catch_every": catch_every}
    settings = _settings(study, consent, debrief, completion_url, completion_code, failed_code, catch_failures,
                         min_viewport, certfile, keyfile, https_proxy, jspsych, cfg)
    design = Design(stimuli, read_trials(stimuli, trials), read_labels(labels) if labels else LABELS,
                    read_texts(instructions) if instructions else dict(TEXTS))
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db)
    have = len(store.progress())
    made = store.add_participants(participants - have, design.trials, **cfg) if participants > have else []
    base = (base_url or f"{'https' if certfile else 'http'}://{host}:{port}").rstrip("/")
    for name, token in made:
        click.echo(f"{name}\t{base}/p/{token}")
    if study:
        click.echo(f"study link (Prolific): {base}/s/{study}?{PROLIFIC_QUERY}\n"
                   f"study link (other platforms): {base}/s/{study}?pid=<the participant's id>", err=True)
    click.echo(f"serving {len(design.trials)} stimuli to {have + len(made)} participant(s) on {base} "
               f"(admin: {base}/admin)", err=True)
    app = create_app(store, design, admin_token, settings)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                ssl_certfile=certfile and str(certfile), ssl_keyfile=keyfile and str(keyfile))


@experiment.command()
@click.option("--stimuli", type=_PATH(exists=True, file_okay=False), required=True)
@click.option("--trials", type=_FILE, required=True)
@click.option("--db", type=_PATH(dir_okay=False), required=True)
@click.option("-n", "count", type=click.IntRange(1), default=1, show_default=True, help="Participants to add.")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@_schedule_options
@_user_errors
def add(stimuli, trials, db, count, base_url, practice, sessions, catch_every, seed):
    """Create participants (random tokens, stored schedules) and print `name<TAB>link`."""
    from ferjax.people.experiment.db import Store
    from ferjax.people.experiment.design import read_trials

    store = Store(db)
    for name, token in store.add_participants(count, read_trials(stimuli, trials), practice=practice,
                                              sessions=sessions, seed=seed, catch_every=catch_every):
        click.echo(f"{name}\t{base_url.rstrip('/')}/p/{token}")


@experiment.command()
@click.option("--db", type=_PATH(dir_okay=False), required=True, help="The experiment's SQLite database.")
@click.option("--out", type=_PATH(file_okay=False), required=True,
              help="Folder to write: OUT/<yymmdd>_<participant>/{choices,clicks}.csv, OUT/tidy, "
                   "OUT/participants.csv, OUT/responses.csv.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True,
              help="Format of the tidy tables in OUT/tidy.")
@click.option("--psychds", type=_PATH(file_okay=False), default=None,
              help="Also write a Psych-DS dataset (every trial and click, no platform ids) to this folder.")
@click.option("--study", default="ferjax", show_default=True, help="The Psych-DS files' study keyword.")
@click.option("--platform-ids", is_flag=True,
              help="Include the recruitment platform's ids (personal data: only if your ethics approval allows).")
@_user_errors
def export(db, out, fmt, psychds, study, platform_ids):
    """Export answered main-session stimulus trials (not practice, not catch); clicks of each trial's final attempt.

    Times are the browser's monotonic clock (performance.now): seconds from the
    trial's first click. `ferjax.people.clicklogs.load_logs(OUT)` reads the result;
    `ferjax human --logs OUT` applies the exclusion rules with participants.csv and responses.csv.
    """
    from ferjax.people.experiment.export import export as run
    from ferjax.people.experiment.psychds import export_psychds, keyword

    try:
        keyword(study)
    except ValueError as err:
        raise InputError("--study", None, str(err)) from None
    people, n = run(db, out, fmt, platform_ids)
    click.echo(f"exported {n} trial(s) of {people} participant(s) to {out}")
    if psychds is not None:
        m = export_psychds(db, psychds, study, platform_ids)
        click.echo(f"Psych-DS dataset of {m} participant(s) in {psychds}")


@experiment.command()
@click.option("--db", type=_PATH(dir_okay=False), required=True, help="The experiment's SQLite database (live).")
@click.option("--out", type=_PATH(dir_okay=False), required=True, help="The copy to write (replaced atomically).")
@_user_errors
def backup(db, out):
    """Copy the database while the server runs: a consistent snapshot, one self-contained file."""
    from ferjax.people.experiment.backup import backup as run

    r = run(db, out)
    click.echo(f"backed up {r['participants']} participant(s), {r['trials']} answered trial(s), {r['clicks']} "
               f"click(s) to {out} ({r['bytes']} bytes in {r['seconds']} s)")
