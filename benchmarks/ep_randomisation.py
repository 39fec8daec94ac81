"""Model-randomisation check of Extremal Perturbation: TorchRay's own code beside ferjax's.

Adebayo et al. (2018) re-initialise a trained network's classifier ("head"),
then every layer ("all"), and ask whether an attribution method's maps
change: a Spearman rank correlation with the trained network's maps below
0.5. The `compare` stage runs this check on the pipeline's EP (the `fast`
preset). This script asks whether EP itself passes it at the reference
settings, by running TorchRay's ``extremal_perturbation`` (800 iterations, its
own optimiser) on a torch port of the trained and the randomised networks,
beside ferjax's `faithful` preset at 800 iterations and its `fast` preset.

Same protocol as the `compare` stage: ``ferjax.explain.sanity.cascade`` draws with
keys ``fold_in(key(seed), d)``, Spearman by ``ferjax.explain.sanity.rank_similarity``,
the true-class logit, area 0.1, step 2 and sigma 6 (TorchRay's 7 and 21
scaled to 64 px). Stimuli: the first ``--per-class`` of each class in
trials.csv. TorchRay runs one image at a time on 1 thread (~6.5 s per image
here), so the default run takes about 10 minutes.

Usage (after ``dvc repro`` has trained ``work/model``)::

    python benchmarks/ep_randomisation.py [--per-class 1] [--draws 3] [--fast-iters 20,100]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import warnings

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import record
from attribution_speed import (
    import_references,
    torch_plain,
    torchray_masks,
    trained_stimuli,
    version,
)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default="work/model")
    ap.add_argument("--stimuli", default="work/stimuli")
    ap.add_argument("--per-class", type=int, default=1, help="stimuli per class (the first in trials.csv)")
    ap.add_argument("--draws", type=int, default=3, help="random re-initialisations per level")
    ap.add_argument("--seed", type=int, default=0, help="as params.yaml's compare.seed")
    ap.add_argument("--fast-iters", default="20,100", help="ferjax fast-preset iteration counts")
    args = ap.parse_args(argv)

    import jax
    import torch

    jax.config.update("jax_num_cpu_devices", 2)
    from ferjax.explain import perturbation, sanity
    from ferjax.networks.saved import init_function

    warnings.filterwarnings("ignore", message="torch.meshgrid")  # TorchRay's, harmless
    torchray_ep = import_references()[0]
    torch.set_num_threads(1)
    params, features, classifier, spec, images, targets = trained_stimuli(
        args.model_dir, args.stimuli, args.per_class)
    kw = {"areas": [0.1], "step": 2, "sigma": 6}

    def torchray(p):
        return torchray_masks(torchray_ep, torch, torch_plain(p, torch, spec["model"]), images, targets,
                              max_iter=800, **kw)

    def ours(preset, iters):
        return lambda p: np.asarray(perturbation.extremal_perturbation(
            features, classifier, p, images, targets, max_iter=iters, preset=preset, **kw)["masks"])[:, 0]

    methods = {"TorchRay, 800 iterations": torchray, "ferjax faithful, 800 iterations": ours("faithful", 800)}
    methods.update({f"ferjax fast, {k} iterations": ours("fast", int(k)) for k in args.fast_iters.split(",")})
    init, levels = init_function(spec), {"head": [], "all": []}
    for d in range(args.draws):
        drawn = sanity.cascade(params, init, jax.random.fold_in(jax.random.key(args.seed), d),
                               [("head", ["head"]), ("all", None)])
        for level, p in drawn.items():
            levels[level].append(p)

    print("# ep_randomisation")
    print(f"date (UTC)   : {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S}")
    print(f"versions     : torch {version('torch')}, torchray {version('torchray')}, jax {version('jax')}")
    print(f"settings     : model {args.model_dir} ({spec['model']}), {len(images)} stimuli, true class, "
          f"area 0.1, step 2, sigma 6, {args.draws} draws per level, seed {args.seed}")
    print("Spearman with the trained network's masks (mean over draws; each draw's mean in brackets):")
    results = {"stimuli": len(images), "draws": args.draws, "seed": args.seed, "methods": {}}
    for name, fn in methods.items():
        res = sanity.randomization_test({name: fn}, params, levels)[name]
        cells = [f"{level} {r['spearman']:.3f} [{' '.join(f'{v:.2f}' for v in r['draws'])}]"
                 for level, r in res.items()]
        verdict = "passes" if all(r["spearman"] < 0.5 for r in res.values()) else "FAILS"
        print(f"  {name:34s}: {'; '.join(cells)} -> {verdict} (the check: < 0.5 at both levels)", flush=True)
        results["methods"][name] = {**{level: r["spearman"] for level, r in res.items()},
                                    "passes": verdict == "passes"}
    record.write("ep_randomisation", results)


if __name__ == "__main__":
    sys.exit(main())
