"""The study's answer in words, each claim with the interval it rests on.

The answer is built in the order a careful reader needs it (primary analysis: ``primary`` per
image, human maps from all trials):

1. **Baselines first.** Where a baseline that knows nothing of the network (the leave-one-out
   face prior, another face's human map, a centre Gaussian; :mod:`ferjax.analysis.ranking`)
   scores higher than every method setting, the answer says so first, with whether each of
   those differences is clear.
2. **Methods, honestly.** A method's settings (EP's area and target, CAM's and GradCAM's
   target) are chosen by cross-fitting (:func:`ferjax.analysis.differences.crossfit`: images
   halved within each class, seed ``seed``; each half scored at the setting that did best on the
   other), so no method gets more tries than another. The methods are then compared in pairs
   with simultaneous 95% intervals (:func:`ferjax.analysis.differences.pairwise`); an interval
   that covers 0 is "no clear difference", a tie.
3. **Settings.** Every setting and baseline as its own candidate, with the best set.
4. **Ceiling.** The leading method's cross-fitted Spearman against the participants' own
   split-half agreement.
5. **Robustness.** Over the multiverse of analysis choices, each method's share of variants in
   which it is *clearly* first, and the share whose top is a tie.
6. **Percent correct** (:mod:`ferjax.analysis.observers`): the marginal difference, network minus
   participants, from the binomial mixed model, with TOST against the margin.
7. **Errors** (error consistency) and, when given, **faithfulness** to the network.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferjax.analysis import correlation, differences

WHAT = {"face prior": "the mean of the other faces' human maps", "shuffled": "another face's human map",
        "center": "a Gaussian at the centre of the frame"}


def family(name: str) -> str:
    """A method setting's method: its first word ("EP 0.1 true" -> "EP")."""
    return name.split()[0]


def crossfitted(wide: pd.DataFrame, labels, methods, *, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Per method family, honest per-item scores with its setting chosen by cross-fitting.

    ``wide``: items x candidates; ``methods``: the method settings among its columns. Returns
    (items x families, {family: [setting chosen for fold 0's items, for fold 1's]})."""
    out, chosen = {}, {}
    for fam in dict.fromkeys(family(m) for m in methods):
        cols = [m for m in methods if family(m) == fam]
        out[fam], chosen[fam], _ = differences.crossfit(wide[cols], labels, seed=seed)
    return pd.DataFrame(out, index=wide.index), chosen


def _pair_text(row, first: str) -> str:
    sign = 1 if row["a"] == first else -1
    other = row["b"] if sign == 1 else row["a"]
    d, lo, hi = sign * row["diff"], *sorted((sign * row["lo"], sign * row["hi"]))
    if row["call"] == "identical":
        return f"{first} and {other} score the same on every image (identical maps up to scale)"
    said = (f"{first} fits better" if lo > 0 else f"{other} fits better" if hi < 0 else
            "no clear difference: a tie")
    return f"{first} - {other} = {d:+.3f} (95% simultaneous CI {lo:+.3f} to {hi:+.3f}): {said}"


def answer(scores: pd.DataFrame, labels, baselines, *, observers: str = "people", ceiling: float | None = None,
           robustness: dict | None = None, accuracy: dict | None = None, trial_level: dict | None = None,
           faithfulness: dict | None = None, primary: str = "dice@0.1", n_boot: int = 2000, seed: int = 0) -> dict:
    """The verdict: ``text`` and the numbers behind each sentence.

    ``scores``: the long per-image table (method, item, metric, value; items in ``labels``
    order); ``baselines``: which candidates are baselines; ``observers``: how the text names the
    participants; the other inputs add their sentences when given (see the module docstring).
    """
    whose = f"{observers}'" if observers.endswith("s") else f"{observers}'s"
    wide = scores[scores["metric"] == primary].pivot(index="item", columns="method", values="value").sort_index()
    methods = [m for m in wide.columns if m not in baselines]
    means = wide.mean()
    table = differences.pairwise(wide, n_boot=n_boot, seed=seed)
    out = {"metric": primary, "settings_pairs": table, "observers": observers}
    sentences = []
    base = means[[b for b in wide.columns if b in baselines]]
    best_base, best_method = (base.idxmax() if len(base) else None), means[methods].idxmax()
    beats = best_base is not None and means[best_base] > means[best_method]
    clear = beats and all(table[((table["a"] == best_base) & (table["b"] == m)) | ((table["a"] == m) & (
        table["b"] == best_base))]["call"].eq(f"{best_base} > {m}").all() for m in methods)
    out["baseline"] = {"name": best_base, "mean": float(means[best_base]) if best_base else None,
                       "beats_every_method": bool(beats), "clearly": bool(clear)}
    if beats:
        sentences.append(
            f"The {best_base} baseline, which knows nothing of the network ({WHAT.get(best_base, best_base)}), fits "
            f"{whose} maps better than every explanation method ({primary} {means[best_base]:.3f} against at most "
            f"{means[best_method]:.3f}, {best_method}); "
            + (f"every one of these differences is clear (simultaneous 95% intervals over {len(table)} pairs)."
               if clear else "not every one of these differences is clear."))
    elif best_base is not None:
        row = table[table[["a", "b"]].isin([best_base, best_method]).all(axis=1)].iloc[0]
        out["baseline"]["beaten_clearly"] = bool(row["call"] == f"{best_method} > {best_base}")
        sentences.append(f"The best method setting, {best_method} ({primary} {means[best_method]:.3f}), beats the best "
                         f"baseline, {best_base} ({means[best_base]:.3f}, {WHAT.get(best_base, best_base)}), "
                         + ("clearly." if out["baseline"]["beaten_clearly"] else "but not clearly."))
    honest, chosen = crossfitted(wide, labels, methods, seed=seed)
    fam = differences.pairwise(honest, n_boot=n_boot, seed=seed)
    fmeans = honest.mean()
    leader = fmeans.idxmax()
    leader_clear = all(r["call"] in (f"{leader} > {r['b'] if r['a'] == leader else r['a']}", "identical")
                       for _, r in fam[(fam["a"] == leader) | (fam["b"] == leader)].iterrows())
    out.update(crossfit={"chosen": chosen, "means": fmeans.to_dict(), "seed": seed,
                         "split": "halves within each true class"},
               methods_pairs=fam, leader=leader, leader_clearly_first=bool(leader_clear))
    picks = "; ".join(f"{f} {' / '.join(dict.fromkeys(c[len(f) + 1:] for c in cs))}" for f, cs in chosen.items())
    twins = {r["b"] for _, r in fam.iterrows() if r["call"] == "identical"}   # one sentence for a twin pair
    pair_texts = [_pair_text(r, r["a"] if fmeans[r["a"]] >= fmeans[r["b"]] else r["b"]) for _, r in fam.iterrows()
                  if r["call"] == "identical" or not ({r["a"], r["b"]} & twins)]
    if pair_texts:
        sentences.append(f"Among the methods, each at the setting chosen on the other half of the images ({picks}): "
                         + "; ".join(pair_texts) + ".")
    ep_cam = fam[fam[["a", "b"]].isin(["EP", "CAM"]).all(axis=1)]
    if len(ep_cam):
        r = ep_cam.iloc[0]
        sign = 1 if r["a"] == "EP" else -1
        lo, hi = sorted((sign * r["lo"], sign * r["hi"]))
        out["ep_vs_cam"] = {"diff": float(sign * r["diff"]), "lo": float(lo), "hi": float(hi),
                            "call": "tie" if lo <= 0 <= hi else "EP" if lo > 0 else "CAM"}
    # the best set from the same simultaneous intervals as the table (every setting and baseline)
    top, top_clear, best = differences.best_of_table(table, methods, means[methods].to_numpy())
    best_names = [m for m, b in zip(methods, best) if b]
    out["settings"] = {"top": methods[top], "clearly_first": top_clear, "best_set": best_names}
    sentences.append(f"Of the {len(methods)} method settings, {methods[top]} has the highest mean"
                     + (", clearly first." if top_clear else
                        f", but none is clearly first: {', '.join(best_names)} are not clearly beaten."))
    if ceiling:
        sp = scores[scores["metric"] == "spearman"].pivot(index="item", columns="method", values="value").sort_index()
        rho = float(crossfitted(sp, labels, [m for m in methods if family(m) == leader], seed=seed)[0][leader].mean())
        out["spearman"], out["of_ceiling"] = rho, rho / ceiling
        sentences.append(f"{leader}'s cross-fitted maps correlate with {whose} maps at Spearman {rho:.3f}, "
                         f"{rho / ceiling:.0%} of their own split-half agreement ({ceiling:.3f}).")
    if robustness and "clearly_first" in robustness:
        cf = robustness["clearly_first"]
        ranked = sorted(cf, key=cf.get, reverse=True)
        sentences.append(f"Over {robustness['variants']} analysis variants, {ranked[0]} is clearly first among the "
                         f"methods in {cf[ranked[0]]:.0%} of them"
                         + "".join(f", {m} in {cf[m]:.0%}" for m in ranked[1:])
                         + f"; the top is a tie in {robustness['tie_at_top']:.0%} (each variant at its own "
                           f"simultaneous 95% level).")
    if accuracy:
        sentences.append(_accuracy_text(accuracy, observers))
        out["accuracy"] = {k: accuracy[k] for k in ("people", "network", "tost")} | {
            "delta": accuracy["glmm"]["delta"], "ci90": accuracy["glmm"]["ci90"], "ci95": accuracy["glmm"]["ci95"]}
    if trial_level:
        ec = trial_level["error_consistency"]
        sentences.append(f"Error consistency: {observers} with each other kappa {ec['people']['mean']:.3f} "
                         f"({ec['people']['ci95'][0]:.3f} to {ec['people']['ci95'][1]:.3f}), the network with them "
                         f"{ec['network']['mean']:.3f} ({ec['network']['ci95'][0]:.3f} to "
                         f"{ec['network']['ci95'][1]:.3f}).")
    if faithfulness:
        out["faithfulness"] = faithful_ranking(faithfulness, means, baselines, whose=whose)
        sentences.append(out["faithfulness"]["text"])
    sentences = [t for t in sentences if t]
    out["text"], out["sentences"] = " ".join(sentences), sentences
    return out


def _accuracy_text(acc: dict, observers: str) -> str:
    g, t = acc["glmm"], acc["tost"]
    lo, hi = (100 * v for v in g["ci90"])
    lo95, hi95 = g["ci95"]
    text = (f"Percent correct on the same images: the network {acc['network']:.1%}, {observers} {acc['people']:.1%}; "
            f"the difference, {100 * g['delta']:+.2f} points (90% interval {lo:+.1f} to {hi:+.1f}; binomial mixed "
            f"model, participants and images crossed), ")
    text += (f"lies within the equivalence margin of +-{100 * t['margin']:g} points (TOST p = {t['p']:.3g})"
             if t["equivalent"] else f"is not shown to lie within +-{100 * t['margin']:g} points (TOST p = "
                                     f"{t['p']:.3g})")
    if lo95 > 0 or hi95 < 0:
        text += f"; the network is clearly {'better' if lo95 > 0 else 'worse'} (95% interval leaves out 0)"
    return text + "."


def faithful_ranking(faithfulness: dict, fit: pd.Series, baselines=(), whose: str = "people's") -> dict:
    """Faithfulness beside the fit to the participants' maps, over the method settings both score.

    ``faithfulness``: metrics/faithfulness.json (``methods``: name -> measure -> {mean, ...});
    ``fit``: mean fit per candidate at the primary metric. The most faithful setting by ROAD
    (combined, higher is better), deletion (lower) and insertion (higher); where the best fit ranks
    by ROAD; and the rankings' agreement, Spearman's rho across the settings (baselines and people's
    own maps left out; a baseline more faithful than every method by ROAD is named)."""
    table = pd.DataFrame({k: {m: v[m]["mean"] for m in ("road_combined", "deletion_auc", "insertion_auc")}
                          for k, v in faithfulness["methods"].items()}).T
    shared = [k for k in table.index if k in fit.index and k not in baselines]
    out = {"images": faithfulness.get("images"), "settings": shared}
    if len(shared) < 2:
        return {**out, "text": ""}
    t, f = table.loc[shared], fit[shared]
    road_rank = t["road_combined"].rank(ascending=False)
    rho = float(correlation.spearman(t["road_combined"].to_numpy(np.float64), f.to_numpy(np.float64)))
    out.update(road=t["road_combined"].idxmax(), deletion=t["deletion_auc"].idxmin(),
               insertion=t["insertion_auc"].idxmax(), best_fit=f.idxmax(), spearman=rho)
    agree = "agree" if rho > 0.5 else "disagree" if rho < 0 else "barely agree"
    text = (f"Faithfulness to the network ({out['images']} stimuli): the most faithful method setting is "
            f"{out['road']} by ROAD, {out['deletion']} by deletion and {out['insertion']} by insertion; "
            f"{out['best_fit']}, the best fit to {whose} maps among them, ranks {int(road_rank[out['best_fit']])} of "
            f"{len(shared)} by ROAD, and the two rankings {agree} (Spearman {rho:.2f} across the settings)")
    extra = [b for b in table.index if b in baselines and table.loc[b, "road_combined"] > t["road_combined"].max()]
    out["baselines_more_faithful"] = extra
    return {**out, "text": text + (f"; {', '.join(extra)} (a baseline) is more faithful by ROAD than every method"
                                   if extra else "") + "."}
