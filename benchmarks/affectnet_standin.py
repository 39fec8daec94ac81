"""Write the synthetic renderer's 256-px RGB faces in AffectNet's layout, to run the real-data profile offline.

AffectNet ships its images in numbered folders with an annotation CSV
(``training.csv``: ``subDirectory_filePath``, ``expression`` and face boxes,
landmarks, valence, arousal, which ferjax ignores). This renders
``--per-class`` faces of each of the 8 classes at 256x256 RGB with
``ferjax synth`` and writes that CSV beside them, so that ``prepare.format:
affectnet`` reads them as it would read AffectNet::

    python benchmarks/affectnet_standin.py --out data/affectnet-standin --per-class 40
    dvc exp run -S prepare.format=affectnet -S prepare.root=data/affectnet-standin ...   (README)
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "ferjax.cli", "synth", "--out", str(args.out), "--per-class",
                    str(args.per_class), "--size", "256", "--channels", "3", "--seed", str(args.seed)], check=True)
    rows = sorted(p.relative_to(args.out).as_posix() for p in (args.out / "faces").glob("*/*.png"))
    with open(args.out / "training.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["subDirectory_filePath", "expression"])
        for name in rows:
            writer.writerow([name, name.split("/")[1]])
    print(f"wrote {len(rows)} faces and {args.out / 'training.csv'}")


if __name__ == "__main__":
    main()
