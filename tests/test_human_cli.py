"""`ferjax human` turns every bad log into one error line, exit status 2 and no output."""

import pytest
from click.testing import CliRunner
from test_human import BAD, S, _edit, write_reference

from ferjax.cli import main


def _run_human(root, out):
    return CliRunner().invoke(main, ["human", "--logs", str(root), "--size", str(S), "--radius", "3",
                                     "--splits", "2", "--out", str(out)])


def _assert_rejected(result, out, *fragments):
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    for fragment in fragments:
        assert fragment in errors[0]
    assert not out.exists()


def test_good_logs_pass(tmp_path):
    root = write_reference(tmp_path / "logs")
    result = _run_human(root, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out/maps.npz").exists()


@pytest.mark.parametrize("name,edit,row,fragment", BAD)
def test_bad_row_exits_2(tmp_path, name, edit, row, fragment):
    root = write_reference(tmp_path / "logs")
    path = _edit(root, "210301_a", name, edit)
    _assert_rejected(_run_human(root, tmp_path / "out"), tmp_path / "out", str(path), "participant a",
                     f"row {row}", fragment)


@pytest.mark.parametrize("name", ["choices.csv", "clicks.csv"])
def test_missing_file_or_column_exits_2(tmp_path, name):
    root = write_reference(tmp_path / "logs")
    (root / "210302_b" / name).unlink()
    _assert_rejected(_run_human(root, tmp_path / "out"), tmp_path / "out", str(root / "210302_b" / name),
                     "not found")
    root = write_reference(tmp_path / "logs2")
    column = "chosen" if name == "choices.csv" else "y_pos"
    path = _edit(root, "210302_b", name, lambda df: df.pop(column))
    _assert_rejected(_run_human(root, tmp_path / "out"), tmp_path / "out", str(path), "missing column", column)


def test_missing_log_folder_exits_2(tmp_path):
    _assert_rejected(_run_human(tmp_path / "absent", tmp_path / "out"), tmp_path / "out", "absent")
