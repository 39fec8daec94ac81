"""Simulated participants behave like the reference study's people."""

import numpy as np
import pandas as pd
import pytest

from ferjax.analysis import agreement
from ferjax.faces import expressions, render, selection
from ferjax.people import simulation


@pytest.fixture(scope="module")
def study():
    """The default study's size: 35 stimuli per class, 22 participants."""
    images, labels, names, intensities, regions = render.render_study(35, size=64, channels=1, seed=0)
    foils = selection.assign_foils(labels, seed=0)
    trials, clicks, dates = simulation.simulate(names, labels, foils, regions, intensities,
                                                  participants=22, seed=0)
    return trials, clicks, dates


def test_human_like_accuracy_and_clicks(study):
    trials, clicks, _ = study
    summary = simulation.summarise(trials)
    assert len(trials) == 22 * 280
    assert 0.80 <= summary["percent_correct"] <= 0.90
    assert 4 <= summary["clicks_median"] <= 6
    assert summary["participant_sd"] < 0.06
    assert summary["zero_click_trials"] > 0
    # Harder pairs: fewer correct, more clicks and more time.
    assert summary["r_accuracy_clicks"] < -0.2 and summary["r_accuracy_time"] < -0.2
    assert summary["r_clicks_time"] > 0.8


def _excess_consistency(trials, seed=0):
    """Mean kappa over people minus its value once each person's outcomes are shuffled among the
    images of the same (true, foil) pair: the error consistency that image-level difficulty adds to
    the difficulty of the pairs."""
    r, v, _, items = agreement.outcomes(trials)
    pair = trials.drop_duplicates("filename").set_index("filename").loc[items, ["true", "foil"]]
    groups = pair.groupby(["true", "foil"]).indices.values()
    rng = np.random.default_rng(seed)
    shuffled = r.copy()
    for person in range(len(r)):
        for rows in groups:
            shuffled[person, rows] = r[person, rng.permutation(rows)]
    iu = np.triu_indices(len(r), 1)
    return np.nanmean(agreement.pairwise(r, v)["kappa"][iu]) - np.nanmean(agreement.pairwise(shuffled, v)["kappa"][iu])


def test_people_find_the_same_faces_hard(study):
    trials, _, _ = study
    summary = simulation.summarise(trials, n_boot=500)
    ec = summary["error_consistency"]
    assert ec["pairs"] == 22 * 21 // 2
    assert ec["ci95"][0] > 0.02, ec            # errors shared across people, above chance
    # and not only because some pairs of expressions are harder than others
    assert _excess_consistency(trials) > 0.03
    assert summary["image_percent_correct"]["sd"] > 0.1
    assert summary["pair_range"]["hardest"] < 0.75 and summary["pair_range"]["easiest"] > 0.95


def test_difficulty_drawn_per_trial_is_not_shared():
    # The control: each participant meets the faces of a (true, foil) pair in a different order
    # under the pair's stimulus names, so a name's difficulty varies per trial, not per image.
    images, labels, names, intensities, regions = render.render_study(35, size=64, channels=1, seed=0)
    foils = selection.assign_foils(labels, seed=0)
    logs = []
    for p in range(22):
        perm = np.arange(len(labels))
        for t in range(8):
            for f in range(8):
                rows = np.flatnonzero((labels == t) & (foils == f))
                perm[rows] = np.random.default_rng([9, p, t, f]).permutation(rows)
        log, _, _ = simulation.simulate(names, labels, foils, regions[perm], intensities[perm], participants=1,
                                          seed=p)
        logs.append(log.assign(participant=f"p{p:02d}"))
    control = pd.concat(logs)
    assert abs(_excess_consistency(control)) < 0.02


def test_hard_pairs_are_the_overlapping_expressions(study):
    trials, _, _ = study
    hit = trials["correct"] & (trials["count"] > 0)
    pairs = trials.assign(hit=hit).groupby(["true", "foil"])["hit"].mean()
    # fear (4) vs surprise (3) shares AU1+2+5+26; it must be harder than happy vs sad.
    assert pairs[(4, 3)] < pairs[(1, 2)]


def test_logs_are_consistent(study):
    trials, clicks, dates = study
    counts = clicks.groupby(["participant", "filename"]).size()
    merged = trials.set_index(["participant", "filename"])["count"]
    assert (counts.reindex(merged.index, fill_value=0) == merged).all()
    assert ((clicks["x"] >= 0) & (clicks["x"] < 256) & (clicks["y"] >= 0) & (clicks["y"] < 256)).all()
    assert (clicks.groupby(["participant", "filename"])["time"].diff().dropna() >= 0).all()
    first = clicks[clicks["order"] == 1]
    assert (first["time"] == 0).all()
    assert (trials["correct"] == (trials["chosen"] == trials["true"])).all()
    assert set(trials["chosen"]) <= set(range(8))
    assert ((trials["chosen"] == trials["true"]) | (trials["chosen"] == trials["foil"])).all()
    assert sorted(dates) == [f"p{i:02d}" for i in range(1, 23)]
    assert all(len(d) == 6 and d.isdigit() for d in dates.values())


def test_simulation_is_seeded():
    images, labels, names, intensities, regions = render.render_study(2, size=32, channels=1, seed=0)
    foils = selection.assign_foils(labels, seed=0)
    a = simulation.simulate(names, labels, foils, regions, intensities, participants=2, seed=4)
    b = simulation.simulate(names, labels, foils, regions, intensities, participants=2, seed=4)
    c = simulation.simulate(names, labels, foils, regions, intensities, participants=2, seed=5)
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    assert not a[1].equals(c[1])


def test_without_ground_truth_uses_the_face_prior():
    labels = np.repeat(np.arange(8), 2)
    names = [f"{c}/x{i}.png" for i, c in enumerate(labels)]
    trials, clicks, _ = simulation.simulate(names, labels, selection.assign_foils(labels, seed=0),
                                              participants=3, seed=0)
    assert len(trials) == 48 and len(clicks) > 48
    prior = simulation.face_prior(64)
    assert abs(prior.sum() - 1) < 1e-9 and prior[28, 24] > prior[2, 2]


def test_evidence_favours_the_true_class():
    x = np.zeros((1, len(expressions.AUS)))
    x[0, expressions.AUS.index("AU12")] = 0.8
    x[0, expressions.AUS.index("AU6")] = 0.7
    e = simulation.pair_evidence(x, np.array([1]), np.array([0]))  # happy vs neutral
    assert e[0, expressions.AUS.index("AU12")] > 0.5 and e[0, expressions.AUS.index("AU4")] == 0


def test_summary_of_trials_without_errors_has_no_wrong_mode(study):
    trials, _, _ = study
    perfect = trials[trials["correct"] & (trials["count"] > 0)]
    summary = simulation.summarise(perfect)
    assert summary["percent_correct"] == 1.0 and summary["clicks_mode_wrong"] is None
