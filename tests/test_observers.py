"""People against the network in a binomial mixed model (ferjax.analysis.observers), and what the data are
(ferjax.analysis.source)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from ferjax.analysis import observers, source


def _simulate(beta, *, b0=2.0, s_u=0.3, s_v=1.0, people=12, images=200, seed=0):
    """Every participant answers every image once; the network answers each image once, with log-odds
    b0 + beta + v_i (the model's own assumption: it finds the same faces hard as people do)."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(0, s_u, people), rng.normal(0, s_v, images)
    p_people = special.expit(b0 + u[:, None] + v[None])
    rows = pd.DataFrame({"participant": np.repeat([f"p{i}" for i in range(people)], images),
                         "image": np.tile([f"i{j:03d}" for j in range(images)], people), "network": 0,
                         "correct": (rng.random(p_people.shape) < p_people).ravel().astype(int)})
    net = pd.DataFrame({"participant": "network", "image": [f"i{j:03d}" for j in range(images)], "network": 1,
                        "correct": (rng.random(images) < special.expit(b0 + beta + v)).astype(int)})
    truth = observers.marginal(b0, beta, np.hypot(s_u, s_v), s_v)
    return pd.concat([rows, net], ignore_index=True), float(truth)


def test_the_mixed_model_recovers_a_known_effect_of_the_network():
    rows, truth = _simulate(beta=-1.2)
    out = observers.people_vs_network(rows, network_effects=False, n_boot=1000, seed=0)
    g = out["glmm"]
    assert g["converged"] and truth < -0.1
    assert g["ci95"][0] < truth < g["ci95"][1] and g["ci95"][1] < 0         # found, and its interval holds the truth
    assert abs(g["beta"]["mean"] + 1.2) < 1.96 * g["beta"]["sd_joint"]
    assert g["beta"]["sd_joint"] >= g["beta"]["sd_vb"]                      # the joint SD undoes mean-field's shrinkage
    assert out["bootstrap"]["ci95"][0] < truth < out["bootstrap"]["ci95"][1]
    assert not out["tost"]["equivalent"]                                    # a 12-point gap is not "the same"
    assert set(g["sd"]) == {"participant", "image"} and 0.5 < g["sd"]["image"] < 1.6


def test_equivalence_is_shown_only_when_the_interval_fits_in_the_margin():
    rows, truth = _simulate(beta=0.0, seed=1)
    out = observers.people_vs_network(rows, margin=0.10, n_boot=1000, seed=0)   # with the network's own effects
    assert set(out["glmm"]["sd"]) == {"participant", "image", "image:network"}
    lo, hi = out["glmm"]["ci90"]
    assert out["tost"]["equivalent"] == (-0.10 < lo and hi < 0.10) and out["tost"]["equivalent"]
    assert not observers.tost(0.0, out["glmm"]["se"], 0.01)["equivalent"]   # a margin inside the noise never is
    assert observers.tost(0.0, 0.01, 0.05)["p"] < 1e-5


def test_observer_rows_pair_people_with_the_network_on_the_images_it_answers():
    trials = pd.DataFrame({"participant": ["a", "a", "b", "b"], "filename": ["x", "y", "x", "y"],
                           "correct": [True, True, True, False], "count": [3, 0, 2, 1]})
    answers = pd.DataFrame({"filename": ["x", "y"], "correct": [1.0, np.nan]})   # the network cannot answer y
    rows = observers.observer_rows(trials, answers)
    assert rows.to_dict("list") == {"participant": ["a", "b", "network"], "image": ["x", "x", "x"],
                                    "network": [0, 0, 1], "correct": [1, 1, 1]}
    trials.loc[0, "count"] = 0                                                  # no click: scored wrong
    assert observers.observer_rows(trials, answers)["correct"].tolist()[:2] == [0, 1]


def test_marginal_difference_by_quadrature():
    assert observers.marginal(0.0, 0.0, 0.0, 0.0) == pytest.approx(0.0)
    assert observers.marginal(0.0, 1.0, 0.0, 0.0) == pytest.approx(special.expit(1.0) - 0.5)
    draws = special.expit(1.0 + 2.0 * np.random.default_rng(0).normal(size=400_000)).mean()
    assert observers.marginal(1.0, 0.0, 0.0, 2.0) == pytest.approx(draws - special.expit(1.0), abs=2e-3)


HUMAN = {"participants": 20, "trials": 5500, "exclusions": {
    "participants": {"before": 22, "excluded": 2, "reasons": {"catch_accuracy": 1, "incomplete": 1}},
    "trials": {"before": 6160, "excluded": 660, "reasons": {"participant_excluded": 560, "too_fast": 100}}}}


def test_the_default_study_says_its_participants_are_simulated_and_its_faces_rendered():
    d = source.describe(logs_provenance={"study": "simulated participants (ferjax.people.simulation), not people"},
                        au_regions=True, human={"participants": 22, "trials": 6160}, n_images=280)
    assert d["participants"] == "simulated" and d["faces"] == "rendered" and not d["real_people"]
    assert d["text"].startswith("Simulated participants, rendered faces") and source.ASSUMPTIONS in d["text"]
    assert d["observers"] == "the simulated participants"


def test_a_users_study_gives_counts_and_exclusions_instead():
    d = source.describe(logs_provenance=None, au_regions=False, human=HUMAN, n_images=280,
                        dataset="affectnet faces in data/affectnet")
    assert d["real_people"] and d["participants"] == "recorded" and d["faces"] == "dataset"
    assert "simulat" not in d["text"].lower() and d["observers"] == "people"
    for part in ("280 images from affectnet faces in data/affectnet", "20 participants analysed of 22, 2 excluded",
                 "catch accuracy 1", "incomplete 1", "5500 trials analysed of 6160, 660 excluded", "too fast 100"):
        assert part in d["text"], part
    assert (d["excluded_participants"], d["excluded_trials"]) == (2, 660)
