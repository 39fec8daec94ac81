"""The exclusion rules: each picks the participants or trials it should, says why, and refuses bad quality files."""

import pandas as pd
import pytest

from ferjax.people import exclusions
from ferjax.plumbing.errors import InputError

TRIALS = pd.DataFrame({"participant": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
                       "filename": [f"{k}/{k}_0.png" for k in range(4)] * 3})
CLICKS = TRIALS.assign(order=1, x=1.0, y=1.0, time=0.0)


@pytest.fixture
def logs(tmp_path):
    pd.DataFrame({"participant": ["a", "b", "c"], "status": ["completed", "started", "completed"],
                  "catch_total": [4, 4, 0], "catch_failed": [0, 1, 0]}).to_csv(tmp_path / "participants.csv", index=False)
    rt = [2.0, 2.0, 0.1, 2.0, 2.0, 2.0, 2.0, 2.0, 0.1, 0.2, 0.1, 3.0]
    pd.DataFrame({"participant": TRIALS["participant"], "kind": "stimulus", "filename": TRIALS["filename"],
                  "rt": rt}).to_csv(tmp_path / "responses.csv", index=False)
    return tmp_path


def test_defaults_exclude_no_one_and_need_no_files(tmp_path):
    ex = exclusions.decide(TRIALS, tmp_path)
    assert ex.empty
    t, c = exclusions.apply(TRIALS, CLICKS, ex)
    assert t.equals(TRIALS) and len(c) == len(CLICKS)
    s = exclusions.summary(TRIALS, ex, exclusions.RULES)
    assert s["participants"]["excluded"] == 0 and s["trials"]["excluded"] == 0


def test_each_rule(logs):
    assert exclusions.decide(TRIALS, logs, completed_only=True).values.tolist() == [["b", "", "incomplete"]]
    assert exclusions.decide(TRIALS, logs, min_catch_accuracy=0.8).values.tolist() == [["b", "", "catch_accuracy"]]
    fast = exclusions.decide(TRIALS, logs, min_rt=0.5)
    assert fast.values.tolist() == [["a", "2/2_0.png", "too_fast"], ["c", "0/0_0.png", "too_fast"],
                                    ["c", "1/1_0.png", "too_fast"], ["c", "2/2_0.png", "too_fast"]]
    both = exclusions.decide(TRIALS, logs, min_rt=0.5, max_fast_fraction=0.5)
    t, c = exclusions.apply(TRIALS, CLICKS, both)
    assert t["participant"].tolist() == ["a"] * 3 + ["b"] * 4 and len(c) == 7
    s = exclusions.summary(TRIALS, both, {})
    assert s["participants"] == {"before": 3, "excluded": 1, "reasons": {"fast_trials": 1}, "excluded_ids": ["c"]}
    assert s["trials"] == {"before": 12, "excluded": 5, "reasons": {"participant_excluded": 4, "too_fast": 1}}


def test_missing_or_bad_quality_files_are_errors(logs):
    (logs / "participants.csv").write_text("participant,status,catch_total,catch_failed\na,completed,x,0\n")
    with pytest.raises(InputError, match=r"participants.csv: row 1: column 'catch_total'"):
        exclusions.decide(TRIALS, logs, min_catch_accuracy=0.5)
    (logs / "responses.csv").unlink()
    with pytest.raises(InputError, match="responses.csv: not found, and the exclusion rule min_rt needs it"):
        exclusions.decide(TRIALS, logs, min_rt=0.5)


def test_the_report_says_who_was_left_out(logs):
    from ferjax.report.document import _excluded

    ex = exclusions.decide(TRIALS, logs, min_rt=0.5, max_fast_fraction=0.5)
    text = _excluded(exclusions.summary(TRIALS, ex, {}))
    assert "left out 1 of 3 participants (fast trials: 1) and 5 of 12 trials" in text
    assert _excluded(exclusions.summary(TRIALS, exclusions.decide(TRIALS, logs), {})) == ""  # no one: no sentence
