"""``ferjax experiment``: serve the browser experiment, add participants, export the logs."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors

_PATH = functools.partial(click.Path, path_type=Path)




@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def experiment():
    """Run the reveal-by-click 2AFC experiment in the browser and export its logs.

    \b
      serve   start the web server (participant links /p/<token>, admin view /admin)
      add     create participants in an experiment database and print their links
      export  write the reference click-log layout (+ tidy tables) from the database
    """


def _schedule_options(fn):
    for opt in reversed([
        click.option("--practice", type=click.IntRange(0), default=5, show_default=True,
                     help="Practice trials (drawn from the stimuli; never exported)."),
        click.option("--sessions", type=click.IntRange(1), default=4, show_default=True,
                     help="Sessions the stimuli are split into, with a break between them."),
        click.option("--seed", type=int, default=None,
                     help="Base seed for the participants' schedules (default: random; each seed is stored)."),
    ]):
        fn = opt(fn)
    return fn


@experiment.command()
@click.option("--stimuli", type=_PATH(exists=True, file_okay=False), required=True,
              help="Stimulus folder <label>/<name>.png|jpg (e.g. work/stimuli).")
@click.option("--trials", type=_PATH(exists=True, dir_okay=False), required=True,
              help="trials.csv with filename,true,foil (as `ferjax stimuli` writes it).")
@click.option("--db", type=_PATH(dir_okay=False), required=True, help="SQLite database (created if missing).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--admin-token", envvar="FERJAX_ADMIN_TOKEN", required=True,
              help="Secret for the admin view /admin (or env FERJAX_ADMIN_TOKEN).")
@click.option("--participants", type=click.IntRange(0), default=0, show_default=True,
              help="Make sure at least this many participants exist; new links are printed.")
@click.option("--instructions", type=_PATH(exists=True, dir_okay=False),
              help="Instructions as plain text, or a .json object overriding any page text (for translations).")
@click.option("--labels", type=_PATH(exists=True, dir_okay=False),
              help="Button names of labels 0..7, one per line (default: AffectNet's English names).")
@click.option("--base-url", default=None, help="Public URL prefix for the printed links (default http://HOST:PORT).")
@_schedule_options
@_user_errors
def serve(stimuli, trials, db, host, port, admin_token, participants, instructions, labels, base_url,
          practice, sessions, seed):
    """Serve the experiment. Every click and choice is committed to DB before it is acknowledged."""
    import uvicorn

    from ferjax.people.experiment.app import create_app
    from ferjax.people.experiment.db import Store
    from ferjax.people.experiment.design import (
        LABELS,
        TEXTS,
        Design,
        read_labels,
        read_texts,
        read_trials,
    )

    if len(admin_token) < 8:
        raise InputError("--admin-token", None, "use at least 8 characters")
    design = Design(stimuli, read_trials(stimuli, trials), read_labels(labels) if labels else LABELS,
                    read_texts(instructions) if instructions else dict(TEXTS))
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db)
    cfg = {"practice": practice, "sessions": sessions, "seed": seed}
    have = len(store.progress())
    made = store.add_participants(participants - have, design.trials, **cfg) if participants > have else []
    base = base_url or f"http://{host}:{port}"
    for name, token in made:
        click.echo(f"{name}\t{base}/p/{token}")
    click.echo(f"serving {len(design.trials)} stimuli to {have + len(made)} participant(s) on {base} "
               f"(admin: {base}/admin)", err=True)
    app = create_app(store, design, admin_token)
    app.state.schedule = cfg
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@experiment.command()
@click.option("--stimuli", type=_PATH(exists=True, file_okay=False), required=True)
@click.option("--trials", type=_PATH(exists=True, dir_okay=False), required=True)
@click.option("--db", type=_PATH(dir_okay=False), required=True)
@click.option("-n", "count", type=click.IntRange(1), default=1, show_default=True, help="Participants to add.")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@_schedule_options
@_user_errors
def add(stimuli, trials, db, count, base_url, practice, sessions, seed):
    """Create participants (random tokens, stored schedules) and print `name<TAB>link`."""
    from ferjax.people.experiment.db import Store
    from ferjax.people.experiment.design import read_trials

    store = Store(db)
    for name, token in store.add_participants(count, read_trials(stimuli, trials),
                                              practice=practice, sessions=sessions, seed=seed):
        click.echo(f"{name}\t{base_url.rstrip('/')}/p/{token}")


@experiment.command()
@click.option("--db", type=_PATH(dir_okay=False), required=True, help="The experiment's SQLite database.")
@click.option("--out", type=_PATH(file_okay=False), required=True,
              help="Folder to write: OUT/<yymmdd>_<participant>/{choices,clicks}.csv and OUT/tidy.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True,
              help="Format of the tidy tables in OUT/tidy.")
@_user_errors
def export(db, out, fmt):
    """Export answered main-session trials (not practice); clicks of each trial's final attempt.

    Times are the browser's monotonic clock (performance.now): seconds from the
    trial's first click. `ferjax.people.clickmaps.load_logs(OUT)` reads the result.
    """
    from ferjax.people.experiment.export import export as run

    people, n = run(db, out, fmt)
    click.echo(f"exported {n} trial(s) of {people} participant(s) to {out}")
