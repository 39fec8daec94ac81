"""The report's sections on what the data are, which differences are clear, people against the network
in a mixed model, and faithfulness to the network.

Built from the `compare` stage's results (:mod:`ferjax.analysis.source`,
:mod:`ferjax.analysis.verdict`, :mod:`ferjax.analysis.observers`) and, when the
`faithfulness` stage ran, metrics/faithfulness.json. Each returns an HTML string.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from ferjax.report import html as doc

CALL_HEADERS = {"diff": "difference (a - b)", "lo": "95% simultaneous lo", "hi": "95% simultaneous hi",
                "p_maxT": "p (max-T adjusted)"}


def data_banner(data: dict) -> str:
    """What the data are, on the first screen: simulated or real participants, rendered or dataset faces."""
    cls = "data simulated" if not data["real_people"] else "data"
    return f'<p class="{cls}" id="data-source"><b>What the data are.</b> {html.escape(data["text"])}</p>'


def differences(verdict: dict) -> str:
    """The cross-fitted methods' pairwise calls, then every setting and baseline (collapsed)."""
    fam, settings = verdict["methods_pairs"], verdict["settings_pairs"]
    chosen = "; ".join(f"{f}: {' / '.join(dict.fromkeys(c))}" for f, c in verdict["crossfit"]["chosen"].items())
    text = (f"<p>Each method at the setting chosen on the other half of the images ({html.escape(chosen)}; images "
            f"halved within each class, seed {verdict['crossfit']['seed']}), then every pair of methods compared on "
            f"{html.escape(verdict['metric'])} per image: the mean paired difference with a 95% interval that holds "
            f"for all pairs at once (studentised max-T bootstrap, critical value {fam.attrs.get('c', np.nan):.2f} "
            f"instead of 1.96). An interval that covers 0 is no clear difference: a tie.</p>")
    body = doc.table(fam, p_columns=("p_maxT",), headers=CALL_HEADERS, sortable=False)
    st = verdict["settings"]
    text2 = (f"<p>Every setting and baseline as its own candidate ({settings.attrs.get('pairs', len(settings))} pairs, "
             f"critical value {settings.attrs.get('c', np.nan):.2f}). Highest mean among the method settings: "
             f"{html.escape(st['top'])}; " + ("clearly first." if st["clearly_first"] else
                                                "not clearly first; not clearly beaten: "
                                                + html.escape(", ".join(st["best_set"])) + ".") + "</p>")
    return (text + body + text2 + doc.details(f"Every pair of settings and baselines ({len(settings)} rows)",
                                              doc.table(settings, p_columns=("p_maxT",), headers=CALL_HEADERS)))


def shares(rob: dict) -> str:
    """Per method: clearly first, in a tie at the top, first by mean; and the share of tied tops."""
    rows = [{"method": m, "clearly first": rob["clearly_first"][m], "in a tie at the top": rob["tied_first"][m],
             "first by mean": rob["first_among_methods"].get(m, np.nan)} for m in rob["clearly_first"]]
    return (f"<p>Over the {rob['variants']} variants, a method is <b>clearly first</b> where its simultaneous 95% "
            f"interval against each other method lies above 0; otherwise the top is a tie "
            f"({rob['tie_at_top']:.0%} of the variants), shared by every method no other beats clearly. Each "
            f"variant is called at its own level; the shares across variants are descriptive.</p>"
            + doc.table(pd.DataFrame(rows), sortable=False))


def people_vs_network(pvn: dict, observers: str) -> str:
    """The mixed model's marginal difference with TOST, and the two-way bootstrap beside it."""
    g, b, t = pvn["glmm"], pvn["bootstrap"], pvn["tost"]
    rows = [{"estimate": "mixed model, marginal (network - " + observers + ")", "difference": g["delta"],
             "90% lo": g["ci90"][0], "90% hi": g["ci90"][1], "95% lo": g["ci95"][0], "95% hi": g["ci95"][1]},
            {"estimate": "two-way bootstrap (no model)", "difference": b["delta"], "90% lo": b["ci90"][0],
             "90% hi": b["ci90"][1], "95% lo": b["ci95"][0], "95% hi": b["ci95"][1]}]
    sd = ", ".join(f"{k} {v:.2f}" for k, v in g["sd"].items())
    return (f"<p>On the same {pvn['images']} images: a binomial mixed model of every answer (statsmodels "
            f"BinomialBayesMixedGLM, variational Bayes), with random intercepts for the {pvn['participants']} "
            f"participants and for the images, crossed"
            + (", and the network's own image effects" if g["network_effects"] else "")
            + f". The difference is in percent correct, averaged over participants and images (log-odds beta "
              f"{g['beta']['mean']:+.2f} +- {g['beta']['sd_joint']:.2f} is conditional on the random effects). "
              f"Random-effect SDs (log-odds): {html.escape(sd)}"
            + (" (the simulator's variation, not people's)" if observers != "people" else "")
            + f". Equivalence within +-{100 * t['margin']:g} points (TOST, params compare.margin): "
              f"{'shown' if t['equivalent'] else 'not shown'}, p = {t['p']:.3g}.</p>"
            + doc.table(pd.DataFrame(rows), sortable=False))


def faithfulness(faith: dict | None, fit: dict) -> str:
    """Deletion, insertion and ROAD per candidate, beside the fit to the participants' maps."""
    if not faith:
        return "<p class=note>Not run (run `ferjax faithfulness` and pass --faithfulness).</p>"
    keys = [k for k in ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "road_combined")
            if k in next(iter(faith["methods"].values()))]
    rows = [{"candidate": m, **{k: v[k]["mean"] for k in keys}, "fit to maps": fit.get(m, np.nan)}
            for m, v in faith["methods"].items()]
    s = faith["settings"]
    score = {"prob": "softmax probability", "logit": "logit", "logprob": "log-probability"}.get(s["score"], s["score"])
    pct = ", ".join(f"{p:g}" for p in s["percentiles"])
    return (f"<p>Is each map faithful to the network? On {faith['images']} stimuli, the true class's "
            f"{html.escape(score)}: deletion (the most salient pixels first replaced by "
            f"{html.escape(s['baseline'])}, lower area is better) and insertion (put back into the blurred image, "
            f"higher is better), {s['steps']} steps (Petsiuk et al. 2018); ROAD (Rong et al. 2022) removes the "
            f"pixels at or above each percentile {pct} (MoRF, lower is better) or the least relevant "
            f"(LeRF) and fills them by noisy linear imputation; combined = (LeRF - MoRF) / 2, higher is better. "
            f"The last column is the fit to the participants' maps. The two rankings need not agree.</p>"
            + doc.table(pd.DataFrame(rows)))
