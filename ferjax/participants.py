"""Simulated participants for the reveal-and-choose 2AFC task.

Each simulated person does the reference task of Park & Wallraven (2021): a
blurred face, clicks that each uncover a disk, then a choice between the true
label and the trial's foil. The model is an ideal-observer sketch with human
limits:

* **Evidence.** Looking at AU a's region shows its intensity x_a. Against
  the prototypes' mid intensities m_c(a), it favours the true class by
  e_a = |x_a - m_foil(a)| - |x_a - m_true(a)|, which is zero for AUs the two
  classes share and negative for a misleading face (a weak AU20 on a fearful
  face looks like surprise). Uncovering a fraction f_a of the region yields
  f_a * e_a; the gathered evidence is G = sum_a f_a e_a.
* **Where to click.** With probability ``p_diagnostic`` a click lands in the
  still-hidden diagnostic regions (density proportional to the uncovered
  evidence), otherwise on a generic face prior (eyes, nose, mouth); either
  way plus Gaussian spatial noise of ``noise_px``.
* **When to stop.** After each click the person stops once G reaches their
  criterion theta_p, or gives up with probability ``give_up`` per click, or
  at ``max_clicks``. A few trials (``zero_click``) are answered unseen.
* **Choice.** P(correct) = lapse/2 + (1 - lapse) Phi(d_p G), a 2AFC
  psychometric function of the gathered evidence.
* **Timing.** Log-normal inter-click intervals and a decision time after the
  last click; ``time`` runs from the first click, as the reference logged it.

Harder pairs (little diagnostic evidence, as fear vs surprise) therefore take
more clicks, more time and are answered less accurately, without any of that
being scripted per pair.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ferjax.labels import NAMES
from ferjax.render import AUS, PROTOTYPES

_BASE_DATE = _dt.date(2021, 3, 2)

# Face prior in image fractions (x, y, spread): eyes, nose, mouth.
_PRIOR = ((0.375, 0.44, 0.07), (0.625, 0.44, 0.07), (0.5, 0.58, 0.06), (0.5, 0.74, 0.08))


@dataclass(frozen=True)
class Behaviour:
    """Parameters of the simulated participants (defaults give human-like data)."""

    criterion: float = 0.7
    criterion_sd: float = 0.1
    sensitivity: float = 2.3
    sensitivity_sd: float = 0.3
    lapse: float = 0.06
    p_diagnostic: float = 0.6
    noise_px: float = 12.0
    give_up: float = 0.06
    max_clicks: int = 15
    zero_click: float = 0.01
    click_interval: float = 0.9
    decision_time: float = 1.2


def prototype_means() -> np.ndarray:
    """Mid intensity m_c(a) of each AU in each class's prototype, (8, len(AUS))."""
    mids = np.zeros((len(NAMES), len(AUS)))
    for c, name in enumerate(NAMES):
        for au, (lo, hi) in PROTOTYPES[name].items():
            mids[c, AUS.index(au)] = (lo + hi) / 2
    return mids


def pair_evidence(intensities, labels, foils) -> np.ndarray:
    """Evidence e_a = |x_a - m_foil(a)| - |x_a - m_true(a)| per image and AU, (N, len(AUS))."""
    mids = prototype_means()
    x = np.asarray(intensities)
    return np.abs(x - mids[foils]) - np.abs(x - mids[labels])


def face_prior(grid: int) -> np.ndarray:
    """Density (grid, grid) of generic clicks on a face: eyes, nose and mouth, summing to 1."""
    c = (np.arange(grid) + 0.5) / grid
    x, y = np.meshgrid(c, c)
    d = sum(np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * s**2)) for px, py, s in _PRIOR)
    return d / d.sum()


def _sample(rng, density):
    """Draw one cell (row, col) from a 2-D density."""
    flat = density.ravel()
    k = rng.choice(flat.size, p=flat / flat.sum())
    return divmod(k, density.shape[1])


def simulate(filenames, labels, foils, masks=None, intensities=None, *, participants: int,
             seed: int, display: int = 256, radius: float = 15.0,
             behaviour: Behaviour = Behaviour(), progress=None):
    """Run ``participants`` simulated people through the whole stimulus set.

    Args:
      filenames: (N,) stimulus names ``<label>/<name>.png``.
      labels, foils: (N,) int true class and fixed foil class per stimulus.
      masks: (N, len(AUS), G, G) bool regions of every AU (active or not) on
        a G x G grid covering the display frame, or None to use the face
        prior as the evidence map (data without AU annotations).
      intensities: (N, len(AUS)) AU intensities, required with ``masks``.
      participants, seed: participant p uses ``default_rng([seed, p])``.
      display, radius: display frame size and reveal-disk radius in pixels.
      progress: optional tqdm-like bar, advanced once per participant.

    Returns:
      ``(trials, clicks, dates)``: the tidy tables (see ``ferjax.human``),
      and the session date ``yymmdd`` of each participant.
    """
    labels, foils = np.asarray(labels), np.asarray(foils)
    n = len(filenames)
    if masks is None:
        grid = 64
        region = face_prior(grid) > face_prior(grid).max() * 0.2
        masks = np.broadcast_to(region, (n, 1, grid, grid))
        evidence = np.full((n, 1), 1.2)
    else:
        grid = masks.shape[-1]
        evidence = pair_evidence(intensities, labels, foils)
    area = np.maximum(masks.reshape(n, masks.shape[1], -1).sum(-1), 1)
    scale = display / grid
    cells = (np.arange(grid) + 0.5) * scale
    prior = face_prior(grid)
    trials, clicks, dates = [], [], {}
    for p in range(participants):
        rng = np.random.default_rng([seed, p])
        pid = f"p{p + 1:02d}"
        dates[pid] = (_BASE_DATE + _dt.timedelta(days=p)).strftime("%y%m%d")
        theta = max(0.05, rng.normal(behaviour.criterion, behaviour.criterion_sd))
        sens = max(0.5, rng.normal(behaviour.sensitivity, behaviour.sensitivity_sd))
        speed = rng.lognormal(0.0, 0.2)
        for i in rng.permutation(n):
            revealed = np.zeros((grid, grid), bool)
            xs, ys, ts, gathered, t = [], [], [], 0.0, 0.0
            ev_map = np.tensordot(np.maximum(evidence[i], 0) / area[i], masks[i], axes=1)
            if rng.random() >= behaviour.zero_click:
                while len(xs) < behaviour.max_clicks:
                    hidden = ev_map * ~revealed
                    use_diag = hidden.sum() > 0 and rng.random() < behaviour.p_diagnostic
                    r, c = _sample(rng, hidden if use_diag else prior)
                    x = np.clip(c * scale + rng.uniform(0, scale) + rng.normal(0, behaviour.noise_px), 0, display - 1)
                    y = np.clip(r * scale + rng.uniform(0, scale) + rng.normal(0, behaviour.noise_px), 0, display - 1)
                    x, y = int(x), int(y)
                    if xs:
                        t += speed * rng.lognormal(np.log(behaviour.click_interval), 0.4)
                    xs.append(x), ys.append(y), ts.append(round(t, 3))
                    # A disk in display pixels, evaluated at the grid cells' centres.
                    revealed |= ((cells[None, :] - x) ** 2 + (cells[:, None] - y) ** 2) < radius**2
                    gathered = float((evidence[i] * (masks[i] & revealed).reshape(masks.shape[1], -1).sum(-1) / area[i]).sum())
                    if gathered >= theta or rng.random() < behaviour.give_up:
                        break
            p_correct = behaviour.lapse / 2 + (1 - behaviour.lapse) * ndtr(sens * gathered)
            chosen = labels[i] if rng.random() < p_correct else foils[i]
            decision = speed * rng.lognormal(np.log(behaviour.decision_time), 0.35)
            trials.append((pid, filenames[i], int(labels[i]), int(foils[i]), int(chosen),
                           bool(chosen == labels[i]), round(t + decision, 3), len(xs)))
            clicks.extend((pid, filenames[i], k + 1, xs[k], ys[k], ts[k]) for k in range(len(xs)))
        if progress is not None:
            progress.update(1)
    trials = pd.DataFrame(trials, columns=["participant", "filename", "true", "foil", "chosen",
                                           "correct", "time", "count"])
    clicks = pd.DataFrame(clicks, columns=["participant", "filename", "order", "x", "y", "time"])
    return trials, clicks, dates


def _mode(counts: pd.Series):
    """The most common value (the smallest of ties), or None for no trials."""
    return int(counts.mode().min()) if len(counts) else None


def summarise(trials: pd.DataFrame) -> dict:
    """Headline behaviour of a set of trials, scored as the reference scored them.

    A trial counts as correct only if it was answered correctly after at
    least one click. Returns percent correct (pooled and per participant),
    clicks and time per trial, the modal click count on correct and wrong
    trials, the correlations across ordered pairs of accuracy with time and
    clicks, and the hardest and easiest pairs.
    """
    scored = trials.assign(hit=trials["correct"] & (trials["count"] > 0))
    per_p = scored.groupby("participant")["hit"].mean()
    pairs = scored.groupby(["true", "foil"]).agg(acc=("hit", "mean"), clicks=("count", "mean"),
                                                 time=("time", "mean"))
    ranked = pairs.sort_values("acc", kind="stable")

    def name(key):
        return f"{NAMES[key[0]]} vs {NAMES[key[1]]}"

    return {
        "trials": int(len(scored)),
        "percent_correct": float(scored["hit"].mean()),
        "participant_mean": float(per_p.mean()),
        "participant_sd": float(per_p.std(ddof=1)) if len(per_p) > 1 else 0.0,
        "participant_min": float(per_p.min()),
        "participant_max": float(per_p.max()),
        "zero_click_trials": int((scored["count"] == 0).sum()),
        "clicks_median": float(scored["count"].median()),
        "clicks_mean": float(scored["count"].mean()),
        "clicks_mode_correct": _mode(scored.loc[scored["hit"], "count"]),
        "clicks_mode_wrong": _mode(scored.loc[~scored["hit"], "count"]),
        "time_median": float(scored["time"].median()),
        "r_accuracy_time": float(np.corrcoef(pairs["acc"], pairs["time"])[0, 1]),
        "r_accuracy_clicks": float(np.corrcoef(pairs["acc"], pairs["clicks"])[0, 1]),
        "r_clicks_time": float(np.corrcoef(pairs["clicks"], pairs["time"])[0, 1]),
        "hardest_pairs": {name(k): round(float(v), 4) for k, v in ranked["acc"].head(4).items()},
        "easiest_pairs": {name(k): round(float(v), 4) for k, v in ranked["acc"].tail(2).items()},
    }
