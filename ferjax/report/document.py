"""The study's report: the answer first, then the figures behind it, then the detail.

Built from the `compare` stage's results (:mod:`ferjax.analysis.study`,
:mod:`ferjax.analysis.multiverse`, :mod:`ferjax.analysis.agreement`) as one self-contained
HTML file (:mod:`ferjax.report.html`, charts from :mod:`ferjax.report.svg`). Every
figure has an id (``FIGURES``) so that tests can check it is there.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
from PIL import Image

from ferjax.analysis import multiverse, ranking, study
from ferjax.faces.labels import NAMES
from ferjax.report import figures, sections, svg
from ferjax.report import html as doc

FIGURES = ("fig-answer", "fig-accuracy", "fig-confusion", "fig-agreement", "fig-robustness", "fig-choices",
           "fig-pairmaps")
_P_HEADERS = {"p_wilcoxon_holm": "p (Wilcoxon vs best, Holm)", "p_permutation_holm": "p (permutation vs best, Holm)",
              "p_mcnemar": "p (McNemar)", "p_mcnemar_holm": "p (McNemar, Holm)"}
_SHORT = [n[:4] for n in NAMES]


def _rows(table, metric):
    """Dot-plot rows of one metric, image level, all trials: methods coloured, baselines grey."""
    sel = table[(table["level"] == "image") & (table["human"] == "all") & (table["metric"] == metric)]
    base = set(ranking.baselines(np.zeros((2, 4, 4))))
    return [{"label": r.method, "mean": r.mean, "lo": r.lo, "hi": r.hi, "bold": r.rank == 1,
             "colour": svg.COLOURS["baseline"] if r.method in base else None} for r in sel.itertuples()]


def _answer(result, head, whose="people's"):
    table = result["ranking"]
    ceiling = head["noise_ceiling"]
    n = int(table[(table["level"] == "image") & (table["human"] == "all")]["n"].max())
    dice = svg.dot_plot(_rows(table, ranking.PRIMARY), title=f"Fit to {whose} maps: {ranking.PRIMARY}",
                        xlabel=f"{ranking.PRIMARY} (mean over {n} images, 95% CI)")
    spear = svg.dot_plot(_rows(table, "spearman"), title=f"Fit to {whose} maps: Spearman's rho",
                         xlabel="Spearman rho (mean, 95% CI)", lines=[(ceiling, "noise ceiling")])
    caption = (f"Each explanation method's maps against the human maps, per image, maps from all trials; grey: "
               f"baselines that know nothing of the network. The dashed line is the noise ceiling, the people's "
               f"own split-half agreement ({ceiling:.3f}). Bars are bootstrap 95% intervals over images.")
    return doc.figure(f'<div class="figs">{dice}{spear}</div>', caption, fig_id="fig-answer")


def _accuracy(acc):
    pairs = acc["pairs"]
    series = [("network, full face", svg.COLOURS["network"], pairs["people"], pairs["model"])]
    if pairs["model_seen"].notna().any():
        series.append(("network, what people saw", svg.COLOURS["seen"], pairs["people"], pairs["model_seen"]))
    plot = svg.scatter(series, title="Percent correct per ordered pair", xlabel="people",
                       ylabel="network")
    acc_fig = doc.figure(plot, "Each dot is one of the 56 ordered (true, foil) pairs; above the diagonal the "
                               "network does better than people on that pair.", fig_id="fig-accuracy")
    mats = study.confusions(pairs)
    titles = {"people": "People", "model": "Network, full face", "model_seen": "Network, what people saw"}
    panels = "".join(svg.heatmap(m, title=titles[k], row_labels=_SHORT, col_labels=_SHORT, vmax=1.0,
                                 row_title="true class", col_title="foil") for k, m in mats.items())
    conf = doc.figure(f'<div class="figs">{panels}</div>',
                      "2AFC confusions: the share of trials on which the foil (column) was chosen over the true "
                      "class (row); darker is more confusable. Blank cells are pairs the trial list never shows.",
                      fig_id="fig-confusion")
    text = (f"<p>People chose correctly on {acc['people']:.1%} of trials; the network on {acc['model']:.1%} of the "
            f"stimuli" + (f" and on {acc['model_seen']:.1%} of what people had uncovered"
                          if acc.get("model_seen") is not None else "")
            + f" (McNemar on shared trials, {study.format_p(acc['mcnemar']['p'])}).</p>")
    return text + acc_fig + conf


def _agreement(trial_level):
    ec = trial_level["error_consistency"]
    groups = []
    for key, label, values in (("people", "person vs person", "per_pair"), ("network", "network vs person",
                                                                              "per_participant"),
                               ("network_seen", "network (seen) vs person", "per_participant")):
        if key in ec:
            e = ec[key]
            groups.append({"label": label, "values": e[values], "mean": e["mean"], "lo": e["ci95"][0],
                           "hi": e["ci95"][1], "colour": svg.COLOURS["seen" if key == "network_seen" else key]})
    plot = svg.strips(groups, title="Error consistency (Cohen's kappa)", xlabel="kappa: 0 = errors independent",
                      lines=[(0.0, "chance")])
    rows = [{"comparison": g["label"], "kappa": g["mean"], "lo": g["lo"], "hi": g["hi"]} for g in groups]
    conc = trial_level["concordance"]
    crow = [{"comparison": "people, split halves (Spearman-Brown)", "r": conc["people_split_half"]["spearman_brown"],
             "lo": np.nan, "hi": np.nan, "noise corrected": np.nan}]
    for key, label in (("network", "network vs people"), ("network_seen", "network (seen) vs people")):
        if key in conc:
            c = conc[key]
            crow.append({"comparison": label, "r": c["mean"], "lo": c["ci95"][0], "hi": c["ci95"][1],
                         "noise corrected": np.nan if c["noise_corrected"] is None else c["noise_corrected"]})
    fig = doc.figure(plot, "Dots: each pair of people, or the network with each person; black: mean with a "
                           "bootstrap 95% interval over stimuli. Person-to-person is the human ceiling.",
                     fig_id="fig-agreement")
    return (fig + doc.table(pd.DataFrame(rows), sortable=False)
            + "<h3>Performance concordance (errors aggregated over people first)</h3>"
            + "<p class=note>Pearson r across stimuli of the network's accuracy with people's mean accuracy; the "
              "noise-corrected value divides by the square root of the split-half ceilings.</p>"
            + doc.table(pd.DataFrame(crow), sortable=False))


def _robustness(variants, rob):
    winners = multiverse.winners(variants, multiverse.present(variants))
    colours = {m: svg.COLOURS[m] for m in multiverse.present(variants)}
    ties = {w: svg.COLOURS["baseline"] for w in winners if w not in colours}   # e.g. "CAM = GradCAM"
    curve_colours = {**{m: c for m, c in colours.items() if m in set(winners)}, **ties}
    lead = max(rob["first_among_methods"], key=rob["first_among_methods"].get)
    dims = [d for d in multiverse.DIMENSIONS if variants[d].nunique() > 1]
    curve = svg.spec_curve(multiverse.margins(variants, lead), winners, [(d, variants[d].tolist()) for d in dims],
                           title=f"{lead}'s margin over the best other method, every analysis variant",
                           ylabel="margin", colours=curve_colours)
    bars = svg.share_bars([(f"{d.replace('_', ' ')} = {v}", s) for d in dims for v, s in rob["by_choice"][d].items()],
                          title="Which method ranks first, by choice", colours=colours)
    shares = pd.DataFrame([{"candidate": k, "first among methods": rob["first_among_methods"].get(k, np.nan),
                            "first among all candidates": v} for k, v in rob["first_among_all"].items()])
    flips = pd.DataFrame([{"choice": d, "changes the winner in": r} for d, r in rob["flip_rate"].items()
                          if r is not None]).sort_values("changes the winner in", ascending=False)
    text = (f"<p>The comparison was rerun over {rob['variants']} combinations of analysis choices. The choice that "
            f"most often changes which method ranks first is <b>{html.escape(str(rob['most_influential']))}</b>.</p>")
    return (text + (sections.shares(rob) if "clearly_first" in rob else "")
            + doc.figure(curve, "Each bar is one analysis variant, sorted; coloured by the method that ranks "
                                "first in it by mean. The rows below mark each variant's choices.",
                         fig_id="fig-robustness")
            + doc.figure(bars, "For each value of each choice, the share of variants each method wins.",
                         fig_id="fig-choices")
            + '<div class="figs">' + doc.table(shares) + doc.table(flips) + "</div>")


def _sanity(sanity):
    if not sanity:
        return "<p class=note>Not run (run `ferjax sanity` and pass --sanity).</p>"
    out = ""
    pg = sanity.get("pointing_game")
    if pg:
        out += (f"<p>Pointing game: is the peak of the true-class map within {pg['tolerance_px']:.1f} px of the "
                f"expression's action-unit regions ({pg['images']} correctly classified stimuli)?</p>")
        out += doc.table(pd.DataFrame([{"method": k, "hit rate": v["hit_rate"], "class mean": v["class_mean"],
                                        "strict (0 px)": v["strict_hit_rate"]} for k, v in pg["methods"].items()]))
    rnd = sanity["randomization"]
    out += ("<p>Model randomisation: Spearman correlation of the trained network's maps with those of a network "
            "re-initialised from the head ('head') or entirely ('all'); below 0.5 passes.</p>")
    out += doc.table(pd.DataFrame([{"method": k, **{lvl: v["spearman"] for lvl, v in levels.items()}}
                                   for k, levels in rnd["methods"].items()]))
    return out


def _tile(face, saliency=None, size=80):
    t = figures.overlay(face, saliency) if saliency is not None else np.repeat(np.asarray(face)[..., None], 3, -1)
    return np.asarray(Image.fromarray(t).resize((size, size), Image.Resampling.BILINEAR))


def _pair_maps(result, faces):
    people, methods, pairs = result["pairs"]["all"]
    names = [n for n in methods if n.startswith(("CAM", "GradCAM")) or n in _ep_columns(methods)]
    stops = [tuple(c) for c in figures._ANCHORS]
    blocks = [svg.colourbar(stops, title="each map scaled to its own range", lo="minimum", hi="maximum")]
    head = "<tr><th>pair</th><th>mean face</th><th>people</th>" + "".join(f"<th>{html.escape(n)}</th>"
                                                                          for n in names) + "</tr>"
    for c in range(len(NAMES)):
        rows = []
        for p, (t, f) in enumerate(np.asarray(pairs)):
            if t != c:
                continue
            cells = [_tile(faces[p]), _tile(faces[p], people[p])] + [_tile(faces[p], methods[n][p]) for n in names]
            labels = ["mean face", "people"] + names
            rows.append(f"<tr><td>{NAMES[t]} vs {NAMES[f]}</td>"
                        + "".join(f"<td>{doc.image(x, f'{NAMES[t]} vs {NAMES[f]}: {k}', photo=True)}</td>"
                                  for x, k in zip(cells, labels)) + "</tr>")
        if rows:
            body = f'<div class="scroll"><table class="pairmaps"><thead>{head}</thead><tbody>{"".join(rows)}</tbody>' \
                   f"</table></div>"
            blocks.append(doc.details(f"{NAMES[c]} (true class) against each foil", body, open_=c == 0))
    caption = ("The reference study's level: each ordered pair's maps summed over its stimuli, over the pair's mean "
               "face. Every map uses the same colour scale, from its own minimum to its own maximum.")
    return doc.figure("".join(blocks), caption, fig_id="fig-pairmaps")


def _ep_columns(methods):
    """One EP area per target for the pair-map grid: the middle one of those computed."""
    out = []
    for target in ("true", "contrast"):
        eps = sorted((n for n in methods if n.startswith("EP") and n.endswith(target)),
                     key=lambda n: float(n.split()[1]))
        if eps:
            out.append(eps[len(eps) // 2])
    return out


def _excluded(ex) -> str:
    """A sentence on who the exclusion rules left out (empty when no one was)."""
    if not ex or not (ex["participants"]["excluded"] or ex["trials"]["excluded"]):
        return ""
    why = lambda d: ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in d.items() if v) or "none"  # noqa: E731
    p, t = ex["participants"], ex["trials"]
    return (f"<p>The exclusion rules (params.yaml, section human) left out {p['excluded']} of {p['before']} "
            f"participants ({html.escape(why(p['reasons']))}) and {t['excluded']} of {t['before']} trials "
            f"({html.escape(why(t['reasons']))}); their data stay in the logs.</p>")


def build(result, acc, head, trial_level, variants, faces, *, sanity=None, provenance=None, exclusions=None,
          verdict=None, faithfulness=None) -> str:
    """The report's HTML: what the data are, the answer, which differences are clear, percent correct,
    trial-level agreement, robustness, faithfulness and checks, detail. ``exclusions``: metrics/human.json's
    block of the same name; ``verdict``: :func:`ferjax.analysis.verdict.answer`'s result (with its tables);
    ``faithfulness``: metrics/faithfulness.json."""
    rank = result["ranking"]
    said = verdict or head["verdict"]
    data = head.get("data")
    observers = data["observers"] if data else "people"
    sentences = said.get("sentences") or [said["text"]]
    lead = ((sections.data_banner(data) if data else "")
            + '<div class="lead"><ul>' + "".join(f"<li>{html.escape(t)}</li>" for t in sentences) + "</ul></div>"
            + _answer(result, head, "people's" if observers == "people" else "simulated participants'"))
    accuracy = _excluded(exclusions) + _accuracy(acc)
    if "people_vs_network" in head:
        accuracy += sections.people_vs_network(head["people_vs_network"], observers)
    fit = {r.method: r.mean for r in study.methods_plot(rank).itertuples()}
    parts = [("Which differences are clear?", sections.differences(said))] if verdict else []
    sections_ = parts + [
        ("Percent correct: people and the network", accuracy),
        ("Do people and the network get the same trials wrong?", _agreement(trial_level)),
        ("How robust is the answer to the analysis choices?", _robustness(variants, head["robustness"])),
        ("Are the maps faithful to the network?", sections.faithfulness(faithfulness, fit)),
        ("Do the explanations explain the network?", _sanity(sanity))]
    detail = ""
    for level, label in (("image", "per image"), ("pair", "per ordered pair (the reference study's level)")):
        for which in ("all", "correct"):
            sel = rank[(rank.level == level) & (rank.human == which)].drop(columns=["level", "human"])
            detail += doc.details(f"Method ranking {label}, maps from {which} trials ({len(sel)} rows)",
                                  doc.table(sel, p_columns=("p_wilcoxon_holm", "p_permutation_holm"),
                                            headers=_P_HEADERS))
    by_class = result["by_class"]
    sel = by_class[(by_class["metric"] == ranking.PRIMARY) & (by_class["human"] == "all")]
    if len(sel):
        wide = sel.pivot(index="method", columns="expression", values="value")
        wide = wide[[n for n in NAMES if n in wide.columns]].reset_index()
        detail += doc.details(f"Per expression: mean {ranking.PRIMARY} (per image, all trials)", doc.table(wide))
    detail += doc.details("Percent correct per ordered pair",
                          doc.table(acc["pairs"], p_columns=("p_mcnemar", "p_mcnemar_holm"), headers=_P_HEADERS))
    sections_.append(("Detail (click a heading to open, a column to sort)", detail))
    sections_.append(("Pair maps: mean face, people, methods", _pair_maps(result, faces)))
    sections_.append(("Parameters and versions", doc.details(
        "show", "<pre>" + html.escape(json.dumps(provenance or {}, indent=2, sort_keys=True)) + "</pre>")))
    return doc.page("ferjax report", sections_, lead=lead,
                    subtitle="People and a network on the same 2AFC facial-expression task (Park & Wallraven 2021)")
