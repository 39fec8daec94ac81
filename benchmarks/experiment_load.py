"""Load check of the browser experiment: 50 simulated participants on 127.0.0.1.

Runs `ferjax.people.experiment.loadcheck`: every acknowledged click must be in
the export, and the median acknowledgement latency must stay under 50 ms.
Writes the figures to benchmarks/experiment_load.json.

    python benchmarks/experiment_load.py [--participants 50] [--trials 5] [--clicks 6] [--interval 0.25]
"""

import argparse
import json
import sys

import record

from ferjax.people.experiment import loadcheck


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--participants", type=int, default=50)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--clicks", type=int, default=6)
    p.add_argument("--interval", type=float, default=0.25, help="seconds between a participant's clicks")
    a = p.parse_args()
    r = loadcheck.run(a.participants, a.trials, a.clicks, a.interval)
    print(json.dumps(r, indent=2))
    ok = loadcheck.passed(r, a.participants)
    record.write("experiment_load", {**r, "passed": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
