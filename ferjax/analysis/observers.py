"""People against the network on the same trials: a binomial mixed model, a check, an equivalence test.

One row per answer: each participant's trials on the images the network answers, and the
network's one (deterministic) answer per image. The model (Baayen, Davidson & Bates 2008,
crossed random effects; Barr, Levy, Scheepers & Tily 2013), on the log-odds of a correct answer:

    participant p on image i:  eta = b0 + u_p + v_i
    the network on image i:    eta = b0 + beta + v_i + w_i
    u ~ N(0, s_u^2), v ~ N(0, s_v^2), w ~ N(0, s_w^2)

The images are crossed with the participants and with the network. The network has no
participant effect (its one level would be confounded with beta); w lets it find other faces
hard than people do. It is fitted by statsmodels' ``BinomialBayesMixedGLM.fit_vb``
(mean-field variational Bayes; priors fe ~ N(0, 2^2), log SD ~ N(0, 1)). The mean-field SDs of
the fixed effects are too small (18% in the issue-25 simulation: 95% coverage 0.90), so they are
replaced by the joint Gaussian at the VB means, the inverse of [X Z]' W [X Z] + diag(prior
precisions) (coverage back to 0.95 there).

beta is conditional on the random effects and changes meaning (even sign) with w, so the
estimand is the *marginal* difference in percent correct, network minus people,

    Delta = E_v,w[expit(b0 + beta + v + w)] - E_u,v[expit(b0 + u + v)],

by Gauss-Hermite quadrature (40 nodes) over the random effects, with an interval from 4,000
draws of (b0, beta) from the joint Gaussian and of the log SDs from their VB factors. Beside it,
without a model: the two-way bootstrap (participants and images resampled independently).
Equivalence is two one-sided tests against a margin m (Schuirmann 1987), on the normal
approximation of Delta's draws: p = max(P(Delta <= -m), P(Delta >= m)), equivalent when p <
0.05, i.e. when the 90% interval lies inside (-m, m). With 280 images the network's SE alone is
about 2 points, so a margin under about 3.5 points cannot show equivalence.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import special
from scipy import stats as st

NODES, NODE_WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
NODE_WEIGHTS = NODE_WEIGHTS / NODE_WEIGHTS.sum()


def observer_rows(trials: pd.DataFrame, stimuli_answers: pd.DataFrame) -> pd.DataFrame:
    """``participant, image, network (0/1), correct (0/1)``: people's trials on the images the network
    answers (a trial with 0 clicks is wrong), then the network's answer to each of those images."""
    model = stimuli_answers.dropna(subset=["correct"]).drop_duplicates("filename").set_index("filename")["correct"]
    shared = trials[trials["filename"].isin(model.index)]
    hits = shared["correct"].to_numpy(bool) & (shared["count"].to_numpy() > 0)
    images = sorted(shared["filename"].unique())
    return pd.concat([
        pd.DataFrame({"participant": shared["participant"].astype(str).to_numpy(),
                      "image": shared["filename"].to_numpy(), "network": 0, "correct": hits.astype(int)}),
        pd.DataFrame({"participant": "network", "image": images, "network": 1,
                      "correct": model.loc[images].to_numpy(bool).astype(int)})], ignore_index=True)


def design(rows: pd.DataFrame, network_effects: bool = True):
    """``(exog (n, 2) [1, network], exog_vc (n, q) sparse, ident (q,), names)`` for BinomialBayesMixedGLM."""
    net = rows["network"].to_numpy(bool)
    n = len(rows)
    parts = sorted(rows.loc[~net, "participant"].unique())
    images = sorted(rows["image"].unique())
    pi = rows["participant"].map({p: i for i, p in enumerate(parts)}).to_numpy()
    ii = rows["image"].map({m: i for i, m in enumerate(images)}).to_numpy()
    r, c = [np.flatnonzero(~net), np.arange(n)], [pi[~net].astype(int), len(parts) + ii]
    ident, names = [np.zeros(len(parts), int), np.ones(len(images), int)], ["participant", "image"]
    if network_effects:
        r.append(np.flatnonzero(net))
        c.append(len(parts) + len(images) + ii[net])
        ident.append(np.full(len(images), 2))
        names.append("image:network")
    q = sum(len(i) for i in ident)
    z = sp.csr_matrix((np.ones(sum(len(a) for a in r)), (np.concatenate(r), np.concatenate(c))), shape=(n, q))
    return np.column_stack([np.ones(n), net.astype(float)]), z, np.concatenate(ident), names


def marginal(b0, beta, sd_people, sd_network):
    """Population-averaged percent correct, network minus people (Gauss-Hermite); broadcasts."""
    b0, beta, sp_, sn = (np.asarray(a, np.float64)[..., None] for a in (b0, beta, sd_people, sd_network))
    return (special.expit(b0 + beta + sn * NODES) @ NODE_WEIGHTS) - (special.expit(b0 + sp_ * NODES) @ NODE_WEIGHTS)


def fit(rows: pd.DataFrame, *, network_effects: bool = True, n_draws: int = 4000, seed: int = 0) -> dict:
    """The mixed model: beta (mean, joint SD, VB SD), the random-effect SDs, Delta with 95% and 90% intervals."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    exog, z, ident, names = design(rows, network_effects)
    start = time.perf_counter()
    model = BinomialBayesMixedGLM(rows["correct"].to_numpy(float), exog, z, ident, fe_p=2.0, vcp_p=1.0,
                                  fep_names=["intercept", "network"], vcp_names=names)
    res = model.fit_vb(rng=seed)
    # the joint Gaussian at the VB means restores the fixed effects' correlation with the random ones
    a = sp.hstack([sp.csr_matrix(exog), z]).tocsr()
    eta = exog @ res.fe_mean + z @ res.vc_mean
    w = special.expit(eta) * (1 - special.expit(eta))
    prior = np.concatenate([np.full(2, 1 / 2.0**2), np.exp(-2 * res.vcp_mean)[ident]])
    cov = np.linalg.inv((a.T @ sp.diags(w) @ a).toarray() + np.diag(prior))[:2, :2]
    rng = np.random.default_rng(seed)
    fe = rng.multivariate_normal(res.fe_mean, cov, n_draws)
    sd = np.exp(rng.normal(res.vcp_mean, res.vcp_sd, (n_draws, len(names))))
    s_net = np.hypot(sd[:, 1], sd[:, 2]) if network_effects else sd[:, 1]
    draws = marginal(fe[:, 0], fe[:, 1], np.hypot(sd[:, 0], sd[:, 1]), s_net)
    s_mean = np.exp(res.vcp_mean)
    delta = float(marginal(res.fe_mean[0], res.fe_mean[1], np.hypot(s_mean[0], s_mean[1]),
                           np.hypot(s_mean[1], s_mean[2]) if network_effects else s_mean[1]))
    return {"delta": delta, "ci95": np.quantile(draws, [0.025, 0.975]).tolist(),
            "ci90": np.quantile(draws, [0.05, 0.95]).tolist(), "se": float(draws.std(ddof=1)),
            "beta": {"mean": float(res.fe_mean[1]), "sd_joint": float(np.sqrt(cov[1, 1])),
                     "sd_vb": float(res.fe_sd[1])},
            "sd": {k: float(v) for k, v in zip(names, s_mean)}, "network_effects": network_effects,
            "converged": bool(getattr(res.optim_retvals, "success", True)),
            "seconds": time.perf_counter() - start}


def bootstrap(rows: pd.DataFrame, *, n_boot: int = 4000, seed: int = 0) -> dict:
    """Delta without a model: participants and images resampled independently (weights, one matmul)."""
    people = rows[rows["network"] == 0].pivot_table(index="participant", columns="image", values="correct")
    net = rows[rows["network"] == 1].set_index("image")["correct"].reindex(people.columns).to_numpy(float)
    r = people.to_numpy(float)
    seen = ~np.isnan(r)
    rng = np.random.default_rng(seed)
    wp = rng.multinomial(r.shape[0], np.full(r.shape[0], 1 / r.shape[0]), n_boot)
    wi = rng.multinomial(r.shape[1], np.full(r.shape[1], 1 / r.shape[1]), n_boot)
    people_b = ((wp @ np.nan_to_num(r)) * wi).sum(1) / ((wp @ seen) * wi).sum(1)
    boots = wi @ net / r.shape[1] - people_b
    return {"delta": float(net.mean() - r[seen].mean()), "ci95": np.quantile(boots, [0.025, 0.975]).tolist(),
            "ci90": np.quantile(boots, [0.05, 0.95]).tolist(), "se": float(boots.std(ddof=1))}


def tost(delta: float, se: float, margin: float) -> dict:
    """Two one-sided tests of |Delta| < margin on a normal approximation: p and the call at 0.05."""
    p = float(max(st.norm.sf((delta + margin) / se), st.norm.cdf((delta - margin) / se))) if se > 0 else float(
        abs(delta) >= margin)
    return {"margin": margin, "p": p, "equivalent": p < 0.05}


def people_vs_network(rows: pd.DataFrame, *, margin: float = 0.05, network_effects: bool = True,
                      n_boot: int = 4000, seed: int = 0) -> dict:
    """The mixed model, its model-free check and TOST on the model's Delta, with the raw percentages."""
    model = fit(rows, network_effects=network_effects, seed=seed)
    net = rows["network"] == 1
    return {"people": float(rows.loc[~net, "correct"].mean()), "network": float(rows.loc[net, "correct"].mean()),
            "participants": int(rows.loc[~net, "participant"].nunique()), "images": int(net.sum()),
            "glmm": model, "bootstrap": bootstrap(rows, n_boot=n_boot, seed=seed),
            "tost": tost(model["delta"], model["se"], margin)}
