"""Time the README's two commands as a new user meets them: a fresh clone, a fresh virtual environment.

Clones this repository (its committed HEAD) into a temporary folder, makes a
new virtual environment there, and runs the two commands of the README's
"Two commands" section one after the other, each timed as a whole (installs
included). Writes the wall times, the test count and the machine to
benchmarks/fresh_clone.json, and fails if either command fails.

    python benchmarks/fresh_clone.py [--keep]

Run it on an otherwise idle machine: the figures are quoted in the README.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(readme: Path) -> list[str]:
    """The code blocks of the README's "Two commands" section, in order."""
    text = readme.read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone and its environment")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferjax-fresh-"))
    clone = work / "ferjax"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "XLA_FLAGS")}
    env["PATH"] = f"{work / 'venv' / 'bin'}{os.pathsep}{env['PATH']}"
    results = {"commit": commit, "commands": []}
    try:
        for command in readme_commands(clone / "README.md"):
            print(f"$ {command}", flush=True)
            start = time.perf_counter()
            run = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
            entry = {"command": command, "seconds": seconds, "returncode": run.returncode, "tail": tail}
            summary = re.search(r"(\d+) passed.* in ([\d.]+)s", run.stdout)
            if summary:
                entry.update(tests_passed=int(summary.group(1)), pytest_seconds=float(summary.group(2)))
            print(f"  {seconds / 60:.1f} min, exit {run.returncode}: {tail[-1] if tail else ''}", flush=True)
            results["commands"].append(entry)
            if run.returncode:
                break
        record.write("fresh_clone", results)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return max(c["returncode"] for c in results["commands"])


if __name__ == "__main__":
    sys.exit(main())
