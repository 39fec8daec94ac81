"""Several processes, one JAX job (jax.distributed with gloo on 127.0.0.1): the same outputs as one process.

Attribution and the sanity checks compare two processes of one CPU device
each with one process of one device (each image is independent, so the
bytes are equal). Training compares them with one process of two devices
(the same mesh; the gradient's sum then has the same two terms) and, within
float tolerance, with one device. The processes are real ones, started by
`ferjax launch`.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ferjax.cli import main

ATTRIBUTE = ["--areas", "0.1", "--max-iter", "3", "--ep-targets", "true", "--batch", "28", "--timeout", "60"]
TRAIN = ["--model", "tiny", "--steps", "4", "--batch-size", "8", "--warmup", "1", "--save-every", "2",
         "--timeout", "60"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ferjax(*args, processes=1, devices=1, cwd):
    """Run ``ferjax ARGS`` as ``processes`` processes of ``devices`` CPU devices each; the finished process."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FERJAX_CPU_DEVICES")}
    env["FERJAX_CPU_DEVICES"] = str(devices)
    cmd = [sys.executable, "-m", "ferjax", *map(str, args)]
    if processes > 1:
        cmd = [sys.executable, "-m", "ferjax", "launch", "-n", str(processes), "--timeout", "240", "--", *cmd]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multihost")
    steps = [
        ("synth", "--out", tmp / "data", "--per-class", 10, "--size", 32, "--seed", 1),
        ("prepare", "--root", tmp / "data/faces", "--size", 32, "--ground-truth", tmp / "data/faces_au.npz",
         "--out", tmp / "prepared"),
        ("split", "--dataset", tmp / "prepared", "--stimuli-per-class", 7, "--val", 0.34, "--test", 0.34,
         "--out", tmp / "split"),
        ("stimuli", "--dataset", tmp / "prepared", "--splits", tmp / "split", "--display-size", 64,
         "--out", tmp / "stimuli"),
        ("train", "--dataset", tmp / "prepared", "--splits", tmp / "split", *TRAIN, "--out", tmp / "model"),
        ("network", "--source", "train", "--file", tmp / "model", "--stimuli", tmp / "stimuli",
         "--out", tmp / "network"),
    ]
    for step in steps:
        result = run(*step)
        assert result.exit_code == 0, (step[0], result.output)
    return tmp


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_two_processes_explain_to_the_same_bytes_each_reading_half(study):
    args = ["attribute", "--network", "network", "--stimuli", "stimuli", *ATTRIBUTE]
    one = ferjax(*args, "--out", "one", cwd=study)   # one process, one device
    assert one.returncode == 0, one.stderr
    two = ferjax(*args, "--out", "two", processes=2, cwd=study)
    assert two.returncode == 0, two.stderr
    assert sha(study / "one/maps.npz") == sha(study / "two/maps.npz")
    assert (study / "one/index.csv").read_text() == (study / "two/index.csv").read_text()
    # each process read only its half of every batch: a process that worked alone would read all 56
    assert json.loads((study / "two/provenance.json").read_text())["images_read_per_process"] == [28, 28]
    assert json.loads((study / "one/provenance.json").read_text())["images_read_per_process"] == [56]
    # and only process 0 wrote: one line of summary, not two
    assert two.stdout.count("explained 56 stimuli") == 1
    # the sanity stage's re-runs of the methods split the same way, to the same checks
    checks = ["sanity", "--network", "network", "--stimuli", "stimuli", "--attribution", "one",
              "--pointing-ep-areas", "", "--randomize-ep-images", 2, "--randomize-draws", 1, "--timeout", 60]
    one = ferjax(*checks, "--metrics", "sanity_one.json", cwd=study)
    assert one.returncode == 0, one.stderr
    two = ferjax(*checks, "--metrics", "sanity_two.json", processes=2, cwd=study)
    assert two.returncode == 0, two.stderr
    assert (study / "sanity_one.json").read_bytes() == (study / "sanity_two.json").read_bytes()
    assert two.stdout.count("model randomisation") == 1


def test_two_processes_train_the_same_parameters_and_resume_from_their_checkpoint(study):
    args = ["train", "--dataset", "prepared", "--splits", "split", *TRAIN]
    one = ferjax(*args, "--out", "m_one", devices=2, cwd=study)
    assert one.returncode == 0, one.stderr
    two = ferjax(*args, "--out", "m_two", "--checkpoints", "ckpt", processes=2, cwd=study)
    assert two.returncode == 0, two.stderr
    a, b = np.load(study / "m_one/params.npz"), np.load(study / "m_two/params.npz")
    assert a.files == b.files
    for k in a.files:   # stated tolerance 1e-6; in fact bit-identical (two summands add in either order)
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6)
    # against one device (a different summation tree): equal within float tolerance, and not identical
    # to a run that summed nothing (each process alone would train on half the gradient)
    c = np.load(study / "model/params.npz")
    for k in a.files:
        np.testing.assert_allclose(a[k], c[k], rtol=0, atol=1e-5)
    assert json.loads((study / "m_two/provenance.json").read_text())["processes"] == 2
    # the Orbax checkpoint was written by both processes together; a second run restores it at the last step
    (run_dir,) = (study / "ckpt").iterdir()
    assert "4" in [p.name for p in run_dir.iterdir()]
    again = ferjax(*args, "--out", "m_again", "--checkpoints", "ckpt", processes=2, cwd=study)
    assert again.returncode == 0, again.stderr
    assert sha(study / "m_again/params.npz") == sha(study / "m_two/params.npz")


def test_a_process_that_exits_early_stops_the_others_with_an_error(study):
    from ferjax.cli.launch import free_port

    common = ["attribute", "--stimuli", "stimuli", *ATTRIBUTE[:-1], "20", "--coordinator",
              f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    start = time.monotonic()
    survivor = subprocess.Popen([sys.executable, "-m", "ferjax", *common, "--network", "network",
                                 "--process-id", "0", "--out", "left"], cwd=study, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failing = subprocess.run([sys.executable, "-m", "ferjax", *common, "--network", "missing",
                              "--process-id", "1", "--out", "right"], cwd=study, env=env, capture_output=True,
                             text=True, timeout=120)
    assert failing.returncode == 2
    assert failing.stderr.strip().splitlines()[-1].startswith("error: missing/model.json: cannot read")
    _, err = survivor.communicate(timeout=120)
    assert survivor.returncode != 0
    assert "unhealthy" in err and "1" in err   # the runtime names the process that stopped
    assert time.monotonic() - start < 90       # the --timeout set, not JAX's 5-minute defaults
    assert not (study / "left").exists() and not (study / "right").exists()


def test_launch_stops_the_job_when_one_process_fails(tmp_path):
    script = ("import os, sys, time\n"
              "sys.exit(3) if os.environ['FERJAX_PROCESS_ID'] == '1' else time.sleep(120)\n")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ferjax", "launch", "-n", "2", "--", sys.executable, "-c",
                             script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == "error: process 1 of 2 exited with status 3; stopped the others"
    assert time.monotonic() - start < 30


def test_multihost_options_must_come_together(tmp_path):
    result = run("attribute", "--network", tmp_path, "--stimuli", tmp_path, "--out", tmp_path / "o",
                 "--num-processes", 2)
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --coordinator: is missing (give --coordinator, --num-processes and "
                                     "--process-id together)")
    assert not (tmp_path / "o").exists()


def test_dvc_runs_train_and_attribute_through_the_launcher_param():
    import yaml

    root = Path(__file__).resolve().parents[1]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for name in ("train", "attribute", "sanity"):
        assert stages[name]["cmd"] == f"${{cluster.launch}} python stages/{name}.py"
    assert yaml.safe_load((root / "params.yaml").read_text())["cluster"]["launch"] == ""
