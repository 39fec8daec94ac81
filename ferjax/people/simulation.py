"""Simulated participants for the reveal-and-choose 2AFC task.

Each simulated person does the reference task of Park & Wallraven (2021): a
blurred face, clicks that each uncover a disk, then a choice between the true
label and the trial's foil. The model is a sequential-sampling observer
(Wald's sequential test with a collapsing bound, as in the drift-diffusion
models of 2AFC choices; Drugowitsch et al., J. Neurosci. 2012, on why the
bound falls when sampling costs), reading the face's action units through
perceptual noise. Which mechanism does what:

* **What the face offers (shared by everyone).** AU a of the face has
  intensity x_a (:mod:`ferjax.faces.render`: subtle expressions and blends with
  the nearest other expression make some faces ambiguous). Against the two
  prototypes' mid intensities m_true(a) and m_foil(a) it favours the true
  class by e_a = |x_a - m_foil(a)| - |x_a - m_true(a)|: zero for AUs the two
  classes share, negative for a face that looks like the foil. Nothing about a face's
  difficulty is drawn per trial, so every observer finds the same faces
  hard (error consistency above 0).
* **Salience (shared by everyone, not by the network).** People weigh an
  AU's evidence by how conspicuous it is to them, ``SALIENCE[a] **
  salience`` (the mouth most; lids and cheeks least): a face whose
  difference from the foil lies in subtle lid or cheek changes is hard for
  every person, whatever a network trained on the pixels makes of it.
* **Noisy reading (per trial).** A person reads each AU's intensity as
  x_a + ``reading_noise`` * N(0, 1), once per trial: the misreading stays
  however much of the region they uncover, so a face near the boundary
  between the two prototypes stays ambiguous. The weighted evidence they
  compute from their reading, ê_a, replaces e_a.
* **Where to click.** With probability ``p_diagnostic`` a click lands in the
  still-hidden regions of the AUs in which the two prototypes differ
  (density proportional to |m_true(a) - m_foil(a)| per region pixel: people
  know where the two expressions differ, not how this face will turn out),
  otherwise on a generic face prior (eyes, nose, mouth); either way plus
  Gaussian spatial noise of ``noise_px``.
* **When to stop.** Uncovering a fraction f_a of region a gathers
  G = sum_a f_a ê_a. After click k the person stops once |G| reaches their
  bound theta_p (1 - k / ``collapse``): confident either way, with a
  criterion that falls as clicks accumulate, so weak evidence ends in an
  answer on weak evidence rather than endless clicking. They also give up
  with probability ``give_up`` per click, stop at ``max_clicks``, and answer
  a few trials (``zero_click``) unseen.
* **Choice.** P(correct) = lapse/2 + (1 - lapse) Phi(d_p G): the sign of
  the gathered evidence, softened by decision noise, plus attention lapses.
  Errors therefore come mostly from faces whose reading favours the foil.
* **Timing.** Log-normal inter-click intervals and a decision time after the
  last click; ``time`` runs from the first click, as the reference logged it.

Harder pairs (those whose faces blend into each other, as fear and surprise)
therefore take more clicks, more time and are answered less accurately,
without any of that being scripted per pair or per image. With
``reading_noise`` 0 every observer reads every face exactly and answers it
the same way up to where they click, decision noise and lapses; raising it
makes each person's errors more their own.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ferjax.analysis import agreement, correlation
from ferjax.faces.expressions import AUS, prototype_means
from ferjax.faces.labels import NAMES

_BASE_DATE = _dt.date(2021, 3, 2)

# Face prior in image fractions (x, y, spread): eyes, nose, mouth.
_PRIOR = ((0.375, 0.44, 0.07), (0.625, 0.44, 0.07), (0.5, 0.58, 0.06), (0.5, 0.74, 0.08))


# How much weight people give each AU's evidence: the mouth most, then brows and eyes, lids and cheeks least
# (a modelling assumption after the Bubbles studies of expression recognition, which found the mouth the most
# used region for telling basic expressions apart: Smith et al. 2005, Blais et al. 2012).
SALIENCE = np.array([{"AU1": .7, "AU2": .7, "AU4": .8, "AU5": .6, "AU6": .4, "AU7": .4, "AU9": .6, "AU12": 1.0,
                      "AU14": .5, "AU15": .8, "AU20": .8, "AU26": 1.0}[a] for a in AUS])


@dataclass(frozen=True)
class Behaviour:
    """Parameters of the simulated participants (defaults give human-like data; module docstring)."""

    criterion: float = 0.55        # bound theta on |G| at the first click, mean over people
    criterion_sd: float = 0.15
    collapse: float = 12.0         # the bound reaches 0 after this many clicks (0: a fixed bound)
    reading_noise: float = 0.05    # SD of a person's reading of an AU's intensity, per trial
    salience: float = 2.0          # evidence of AU a weighted by SALIENCE[a] ** salience (0: all AUs alike)
    sensitivity: float = 6.0       # d in P(correct) = Phi(d G), mean over people
    sensitivity_sd: float = 0.4
    lapse: float = 0.04
    p_diagnostic: float = 0.9
    noise_px: float = 6.0
    give_up: float = 0.01
    max_clicks: int = 15
    zero_click: float = 0.01
    click_interval: float = 0.9
    decision_time: float = 1.2


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
      ``(trials, clicks, dates)``: the tidy tables (see ``ferjax.people.clickmaps``),
      and the session date ``yymmdd`` of each participant.
    """
    labels, foils = np.asarray(labels), np.asarray(foils)
    n = len(filenames)
    b = behaviour
    if masks is None:
        # without AU annotations: one pseudo-AU on the face prior, read as 1.2 +- reading noise
        grid = 64
        region = face_prior(grid) > face_prior(grid).max() * 0.2
        masks = np.broadcast_to(region, (n, 1, grid, grid))
        x, mid_true, mid_foil = np.full((n, 1), 0.6), np.full((n, 1), 0.6), np.full((n, 1), -0.6)
    else:
        grid = masks.shape[-1]
        mids = prototype_means()
        x, mid_true, mid_foil = np.asarray(intensities, float), mids[labels], mids[foils]
    # where people look: the regions in which the two prototypes differ (top-down, the same for every face of a pair)
    where = np.abs(mid_true - mid_foil)
    weight = SALIENCE ** b.salience if masks.shape[1] == len(AUS) else np.ones(1)
    area = np.maximum(masks.reshape(n, masks.shape[1], -1).sum(-1), 1)
    scale = display / grid
    cells = (np.arange(grid) + 0.5) * scale
    prior = face_prior(grid)
    trials, clicks, dates = [], [], {}
    for p in range(participants):
        rng = np.random.default_rng([seed, p])
        pid = f"p{p + 1:02d}"
        dates[pid] = (_BASE_DATE + _dt.timedelta(days=p)).strftime("%y%m%d")
        theta = max(0.05, rng.normal(b.criterion, b.criterion_sd))
        sens = max(0.5, rng.normal(b.sensitivity, b.sensitivity_sd))
        speed = rng.lognormal(0.0, 0.2)
        for i in rng.permutation(n):
            # this trial's reading of every AU's intensity: the face's own value plus perceptual
            # noise that stays however much of the region is uncovered
            seen_x = x[i] + b.reading_noise * rng.standard_normal(x.shape[1])
            evidence = weight * (np.abs(seen_x - mid_foil[i]) - np.abs(seen_x - mid_true[i]))
            revealed = np.zeros((grid, grid), bool)
            xs, ys, ts, gathered, t = [], [], [], 0.0, 0.0
            ev_map = np.tensordot(where[i] / area[i], masks[i], axes=1)
            if rng.random() >= b.zero_click:
                while len(xs) < b.max_clicks:
                    hidden = ev_map * ~revealed
                    use_diag = hidden.sum() > 0 and rng.random() < b.p_diagnostic
                    r, c = _sample(rng, hidden if use_diag else prior)
                    px = np.clip(c * scale + rng.uniform(0, scale) + rng.normal(0, b.noise_px), 0, display - 1)
                    py = np.clip(r * scale + rng.uniform(0, scale) + rng.normal(0, b.noise_px), 0, display - 1)
                    px, py = int(px), int(py)
                    if xs:
                        t += speed * rng.lognormal(np.log(b.click_interval), 0.4)
                    xs.append(px), ys.append(py), ts.append(round(t, 3))
                    # A disk in display pixels, evaluated at the grid cells' centres.
                    revealed |= ((cells[None, :] - px) ** 2 + (cells[:, None] - py) ** 2) < radius**2
                    uncovered = (masks[i] & revealed).reshape(masks.shape[1], -1).sum(-1) / area[i]
                    gathered = float((evidence * uncovered).sum())
                    bound = theta * max(0.0, 1.0 - len(xs) / b.collapse) if b.collapse > 0 else theta
                    if abs(gathered) >= bound or rng.random() < b.give_up:
                        break
            p_correct = b.lapse / 2 + (1 - b.lapse) * ndtr(sens * gathered)
            chosen = labels[i] if rng.random() < p_correct else foils[i]
            decision = speed * rng.lognormal(np.log(b.decision_time), 0.35)
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


def summarise(trials: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Headline behaviour of a set of trials, scored as the reference scored them.

    A trial counts as correct only if it was answered correctly after at
    least one click. Returns percent correct (pooled and per participant),
    clicks and time per trial, the modal click count on correct and wrong
    trials, the correlations across ordered pairs of accuracy with time and
    clicks, the hardest and easiest pairs, and how much people share which
    faces are hard (:func:`ferjax.analysis.agreement.image_difficulty`: person-to-person
    error consistency with a bootstrap interval over stimuli, the spread of
    per-image percent correct, the pair-accuracy range beside the reference's).
    """
    scored = trials.assign(hit=trials["correct"] & (trials["count"] > 0))
    per_p = scored.groupby("participant")["hit"].mean()
    pairs = scored.groupby(["true", "foil"]).agg(acc=("hit", "mean"), clicks=("count", "mean"),
                                                 time=("time", "mean"))
    ranked = pairs.sort_values("acc", kind="stable")

    def name(key):
        return f"{NAMES[key[0]]} vs {NAMES[key[1]]}"

    def r(x, y):  # Pearson's r across the ordered pairs
        return float(correlation.pearson(pairs[x].to_numpy(np.float64), pairs[y].to_numpy(np.float64)))

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
        "r_accuracy_time": r("acc", "time"), "r_accuracy_clicks": r("acc", "clicks"),
        "r_clicks_time": r("clicks", "time"),
        "hardest_pairs": {name(k): round(float(v), 4) for k, v in ranked["acc"].head(4).items()},
        "easiest_pairs": {name(k): round(float(v), 4) for k, v in ranked["acc"].tail(2).items()},
        **agreement.image_difficulty(trials, n_boot=n_boot, seed=seed),
    }
