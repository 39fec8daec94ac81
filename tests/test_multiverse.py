"""The multiverse of analysis choices: scores equal ferjax.analysis.similarity's, and hand-countable summaries."""

import numpy as np
import pandas as pd
import pytest

from ferjax.analysis import multiverse, similarity


def test_scores_from_ranks_equal_the_direct_metrics():
    rng = np.random.default_rng(0)
    a = rng.random((6, 12, 12)).astype(np.float32)
    b = np.round(rng.random((6, 12, 12)) * 3).astype(np.float32)  # many ties, as click maps have
    b[0] = 0.0                                                     # and a constant map
    got = multiverse.scores(multiverse.ranks(a), multiverse.ranks(b), (0.05, 0.1, 0.3))
    for t in (0.05, 0.1, 0.3):
        assert np.allclose(got[f"dice@{t:g}"], np.asarray(similarity.dice(a, b, top=t)), atol=1e-6)
    want = np.asarray(similarity.spearman(a, b))
    assert np.isnan(got["spearman"][0]) and np.isnan(want[0])
    assert np.allclose(got["spearman"][1:], want[1:], atol=1e-5)


def _table(winner_by_metric):
    """Variants over metric x target whose winner among the methods is given per metric."""
    rows = []
    for metric, winner in winner_by_metric.items():
        for target in ("true", "contrast"):
            scores = {"CAM": 0.1, "GradCAM": 0.2, "EP": 0.3, "center": 0.0}
            scores[winner] = 0.9
            rows.append({"metric": metric, "target": target, **scores})
    return pd.DataFrame(rows)


def test_summary_counts_wins_and_flips():
    table = _table({"dice@0.1": "EP", "dice@0.2": "EP", "spearman": "CAM"})
    out = multiverse.summarise(table)
    assert out["variants"] == 6
    assert out["first_among_methods"] == pytest.approx({"CAM": 2 / 6, "GradCAM": 0.0, "EP": 4 / 6})
    # metric: per target, 3 variants -> 3 pairs, 2 of which differ (EP-CAM twice); target never flips
    assert out["flip_rate"]["metric"] == pytest.approx(2 / 3)
    assert out["flip_rate"]["target"] == 0.0
    assert out["most_influential"] == "metric"
    assert out["by_choice"]["metric"]["spearman"]["CAM"] == 1.0
    # the centre baseline never wins here
    assert out["first_among_all"]["center"] == 0.0


def test_a_baseline_can_win_among_all():
    table = _table({"dice@0.1": "EP"}).assign(center=1.0)
    out = multiverse.summarise(table)
    assert out["first_among_all"]["center"] == 1.0 and out["first_among_methods"]["EP"] == 1.0
    assert out["flip_rate"]["metric"] is None


def test_ties_share_first_place():
    # CAM and GradCAM give the same maps on a GAP-linear network: a tie shares the credit
    table = _table({"dice@0.1": "CAM", "spearman": "EP"})
    table.loc[table["metric"] == "dice@0.1", "GradCAM"] = 0.9
    out = multiverse.summarise(table)
    assert out["first_among_methods"] == pytest.approx({"CAM": 0.25, "GradCAM": 0.25, "EP": 0.5})
    assert out["flip_rate"]["metric"] == 1.0 and out["most_influential"] == "metric"


def test_margins():
    table = _table({"dice@0.1": "EP", "spearman": "CAM"})
    m = multiverse.margins(table, "EP")
    assert np.allclose(m, [0.7, 0.7, 0.3 - 0.9, 0.3 - 0.9])
