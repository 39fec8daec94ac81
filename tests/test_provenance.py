"""ferjax.plumbing.provenance: the source digest that keys reusable results to the code."""

from pathlib import Path

import ferjax
from ferjax.plumbing.provenance import source_digest, stamp


def test_source_digest_follows_every_python_file_and_its_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub/b.py").write_text("y = 2\n")
    d = source_digest(tmp_path)
    assert d == source_digest(tmp_path) and len(d) == 64
    (tmp_path / "notes.txt").write_text("not code")
    assert source_digest(tmp_path) == d
    (tmp_path / "sub/b.py").write_text("y = 3\n")
    changed = source_digest(tmp_path)
    assert changed != d
    (tmp_path / "a.py").rename(tmp_path / "c.py")  # same bytes, another module
    assert source_digest(tmp_path) not in (d, changed)
    assert source_digest() == source_digest(Path(ferjax.__file__).parent)


def test_stamp_records_params_and_versions():
    record = stamp({"seed": 0}, study="x")
    assert record["params"] == {"seed": 0} and record["study"] == "x"
    assert record["versions"]["ferjax"] and record["versions"]["jax"]
