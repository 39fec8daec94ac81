"""Time `ferjax.people.clickmaps.rasterize` at the reference study's size.

22 simulated participants x 280 stimuli = 6,160 trials at 256x256, about 5
clicks each (the default synthetic study). Prints the median wall time of
several runs after one compiling run, for all trials and correct-only, and
writes them to benchmarks/rasterize.json.

    python benchmarks/rasterize.py [--repeats 5]
"""

import argparse
import statistics
import time

import numpy as np
import record

from ferjax.faces import render, selection
from ferjax.people import clickmaps, simulation


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    _, labels, names, intensities, regions = render.render_study(35, size=64, channels=1, seed=0)
    trials, clicks, _ = simulation.simulate(names, labels, selection.assign_foils(labels, seed=0), regions,
                                              intensities, participants=22, seed=0)
    print(f"{len(trials)} trials, {len(clicks)} clicks ({len(clicks) / len(trials):.2f} per trial), 256x256")
    results = {"trials": len(trials), "clicks_per_trial": len(clicks) / len(trials), "frame": 256}
    for which in ("all", "correct"):
        clickmaps.rasterize(trials, clicks, which=which)  # compile
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            maps, _ = clickmaps.rasterize(trials, clicks, which=which)
            np.asarray(maps)
            times.append(time.perf_counter() - start)
        print(f"rasterize which={which}: median {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
        results[which] = {"median_s": statistics.median(times), "runs_s": times}
    record.write("rasterize", results)


if __name__ == "__main__":
    main()
