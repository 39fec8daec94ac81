"""What the experiment shows: stimuli, trial list, label names, schedules, images.

The stimulus folder has the reference layout ``<label>/<name>.png|jpg`` and
``trials.csv`` has ``filename,true,foil`` (as ``ferjax stimuli`` writes it).
A participant's schedule (drawn from their own stored seed) is a practice
block of ``practice`` images drawn from the stimuli, then every stimulus once,
shuffled and cut into ``sessions`` blocks of near-equal size; for every trial
a coin flip puts the true label on the left or the right.

Catch trials (attention checks), one in every ``catch_every`` main trials at
a random place, show a stimulus unblurred and ask for one label by name: its
buttons are that instructed label (stored as ``true``) and the face's own
label (stored as ``foil``), so answering the face instead of the instruction
fails the check. They are never in the practice and never analysed as stimuli.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ferjax.faces.labels import NUM_CLASSES
from ferjax.people.experiment.texts import TEXTS
from ferjax.plumbing.errors import InputError

SIZE, BLUR, RADIUS = 256, 70, 15
LABELS = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")


@dataclass
class Design:
    """The stimulus set and what the participant pages say."""

    stimuli: Path
    trials: pd.DataFrame  # filename, true, foil (validated)
    labels: tuple = LABELS
    texts: dict = field(default_factory=lambda: dict(TEXTS))
    _cache: dict = field(default_factory=dict, repr=False)

    def image(self, filename: str, kind: str) -> bytes:
        """PNG bytes of a stimulus at SIZE x SIZE: ``face`` (original colour) or ``blur`` (grayscale, box-blurred)."""
        key = (filename, kind)
        if key not in self._cache:
            self._cache[key] = _render(self.stimuli / filename, kind)
        return self._cache[key]


def _render(path: Path, kind: str) -> bytes:
    img = Image.open(path).convert("RGB")
    if img.size != (SIZE, SIZE):
        img = img.resize((SIZE, SIZE), Image.BILINEAR)
    if kind == "blur":
        import jax.numpy as jnp

        from ferjax.faces.display import box_blur, grayscale
        x = jnp.asarray(np.asarray(img, np.float32) / 255.0)
        g = np.asarray(box_blur(grayscale(x), BLUR))[..., 0]
        img = Image.fromarray(np.round(np.clip(g, 0, 1) * 255).astype(np.uint8), "L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def read_trials(stimuli, path) -> pd.DataFrame:
    """Validated ``trials.csv``: each row's image exists, lies in its true label's folder, true != foil."""
    stimuli, path = Path(stimuli), Path(path)
    if not stimuli.is_dir():
        raise InputError(stimuli, None, "stimulus folder not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise InputError(path, None, f"cannot read CSV: {err}") from None
    if [c.strip() for c in df.columns[:3]] != ["filename", "true", "foil"]:
        raise InputError(path, "header", "expected columns filename,true,foil")
    df.columns = [c.strip() for c in df.columns]
    if not len(df):
        raise InputError(path, None, "no trials")
    out = []
    for i, row in enumerate(df.itertuples(index=False), start=1):
        where = f"row {i}"
        try:
            true, foil = int(row.true), int(row.foil)
        except ValueError:
            raise InputError(path, where, f"labels must be integers, got {row.true!r}, {row.foil!r}") from None
        name = row.filename.strip()
        if not (0 <= true < NUM_CLASSES and 0 <= foil < NUM_CLASSES) or true == foil:
            raise InputError(path, where, f"need two different labels in 0..{NUM_CLASSES - 1}, got {true}, {foil}")
        parts = Path(name).parts
        if len(parts) != 2 or parts[0] != str(true) or Path(name).suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise InputError(path, where, f"filename {name!r} is not <true label>/<name>.png|jpg")
        if not (stimuli / name).is_file():
            raise InputError(path, where, f"image {stimuli / name} not found")
        out.append((name, true, foil))
    t = pd.DataFrame(out, columns=["filename", "true", "foil"])
    if t["filename"].duplicated().any():
        raise InputError(path, f"row {int(t['filename'].duplicated().to_numpy().argmax()) + 1}", "image listed twice")
    return t


def read_labels(path) -> tuple:
    """Label names, one line per label 0..7 (UTF-8 text)."""
    lines = [s.strip() for s in Path(path).read_text(encoding="utf-8").splitlines() if s.strip()]
    if len(lines) != NUM_CLASSES:
        raise InputError(path, None, f"expected {NUM_CLASSES} non-empty lines (names of labels 0..7), got {len(lines)}")
    return tuple(lines)


def schedule(trials: pd.DataFrame, seed: int, practice: int, sessions: int, catch_every: int = 0) -> list[tuple]:
    """Rows ``(idx, block, filename, true, foil, true_left, kind)``; block 0 = practice, 1..sessions = sessions,
    kind ``stimulus`` or ``catch``."""
    rng = np.random.default_rng(seed)
    n = len(trials)
    prac = rng.choice(n, size=practice, replace=practice > n) if practice else np.array([], int)
    blocks = np.array_split(rng.permutation(n), max(1, min(sessions, n)))
    order = [(0, int(i)) for i in prac] + [(b + 1, int(i)) for b, part in enumerate(blocks) for i in part]
    left = rng.random(len(order)) < 0.5
    rows = trials.to_numpy()
    out = [(block, rows[i][0], int(rows[i][1]), int(rows[i][2]), int(left[k]), "stimulus")
           for k, (block, i) in enumerate(order)]
    if catch_every > 0:  # drawn after the stimuli's draws, so that a seed's stimulus order does not change
        main = [k for k, (block, _) in enumerate(order) if block > 0]
        after = {}
        for w in range(len(main) // catch_every):
            k = main[w * catch_every + int(rng.integers(catch_every))]
            name, face = rows[int(rng.integers(n))][:2]
            press = int(rng.choice([label for label in range(NUM_CLASSES) if label != int(face)]))
            after[k] = (order[k][0], name, press, int(face), int(rng.random() < 0.5), "catch")
        out = [row for k, r in enumerate(out) for row in ([r, after[k]] if k in after else [r])]
    return [(k, *row) for k, row in enumerate(out)]
