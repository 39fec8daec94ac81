"""The `dvc exp run` examples of the docs, measured: what DVC re-ran, how long it took, what moved.

``grid_sigma`` and ``reading_noise`` are docs/pipeline.md's; the ``torch_*`` ones are docs/networks.md's PyTorch
checkpoints (first ``dvc pull models/torch/expression_cnn.pt.dvc models/torch/expression_cnn_softmax.pt.dvc``): a
``state_dict`` with its model class, the same model ending in a softmax, and a 64x48 input.

Runs each example as a temporary experiment (``dvc exp run --temp``: the
workspace and its outputs stay as they are), times it, and records the
stages DVC ran and the metrics of the experiment beside the workspace's.
Writes benchmarks/experiments.json. Run it after ``dvc repro``, so that the
experiments start from the committed outputs.

    python benchmarks/experiments.py [NAME ...]
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import record

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "grid_sigma": ["-S", "compare.grid.sigma=[0]"],
    "reading_noise": ["-S", "simulate.reading_noise=0.2"],
}
TORCH = ["-S", "network.source=torch", "-S", "network.model=models.torch.expression_cnn:ExpressionCNN",
         "-S", "network.layer=blocks.2", "-S", "network.input_channels=1"]
EXAMPLES.update({
    "torch_state_dict": [*TORCH, "-S", "network.file=models/torch/expression_cnn.pt",
                         "-S", "network.model_kwargs={num_classes: 8}", "-S", "network.input_size=64"],
    "torch_softmax": [*TORCH, "-S", "network.file=models/torch/expression_cnn_softmax.pt",
                      "-S", "network.model_kwargs={num_classes: 8, final: softmax}", "-S", "network.input_size=64"],
    "torch_64x48": [*TORCH, "-S", "network.file=models/torch/expression_cnn.pt",
                    "-S", "network.model_kwargs={num_classes: 8}", "-S", "network.input_size=64x48"],
})
METRICS = ("metrics/simulate.json", "metrics/human.json", "metrics/network.json", "metrics/compare.json")


def metrics_of(rev: str | None) -> dict:
    """The metrics files at ``rev`` (an experiment's ref), or in the workspace for None, by stage name."""
    if rev is None:
        return {Path(m).stem: json.loads((ROOT / m).read_text()) for m in METRICS}
    out = {}
    for m in METRICS:
        shown = subprocess.run(["git", "show", f"{rev}:{m}"], cwd=ROOT, capture_output=True, text=True, check=True)
        out[Path(m).stem] = json.loads(shown.stdout)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"examples to run (default: all): {', '.join(EXAMPLES)}")
    parser.add_argument("--until", metavar="STAGE",
                        help="run each experiment only up to this stage (dvc exp run's target), e.g. network")
    options = parser.parse_args()
    names = options.names or list(EXAMPLES)
    if set(names) - set(EXAMPLES):
        parser.error(f"unknown example {sorted(set(names) - set(EXAMPLES))[0]}; choose from {', '.join(EXAMPLES)}")
    # each experiment is recorded as soon as it ends: a run of several takes long, and one may fail
    record.update("experiments", "workspace", metrics_of(None))
    for name in names:
        args = EXAMPLES[name]
        start = time.perf_counter()
        run = subprocess.run(["dvc", "exp", "run", "--temp", "--name", f"example-{name}", *args,
                              *([options.until] if options.until else [])], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode:
            print(run.stdout[-2000:], run.stderr[-2000:], file=sys.stderr)
            return run.returncode
        ran = re.findall(r"Running stage '(\w+)'", run.stdout)
        refs = subprocess.run(["git", "for-each-ref", "--sort=-creatordate", "--format=%(refname)", "refs/exps"],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        ref_name = next(r for r in refs if r.endswith(f"/example-{name}"))   # refs/exps/<baseline>/<name>
        record.update("experiments", name, {"params": args[1::2], "until": options.until, "seconds": seconds,
                                            "stages_run": ran, "metrics": metrics_of(ref_name)})
        print(f"{name}: {seconds / 60:.1f} min, ran {', '.join(ran)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
