"""The pipeline's commands end to end on a tiny study: outputs, reproducibility, bad input."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from ferjax.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def pipeline_in(folder: Path):
    """synth -> prepare -> split -> stimuli -> simulate in ``folder``, as dvc.yaml chains them.

    Paths are relative to ``folder``, as DVC's are to the repository, so that
    the provenance records are comparable between two folders.
    """
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        _pipeline(Path("."))
    finally:
        os.chdir(cwd)


def _pipeline(tmp: Path):
    steps = [
        ("synth", "--out", tmp / "data", "--per-class", 10, "--size", 32, "--seed", 1),
        ("prepare", "--root", tmp / "data/faces", "--size", 32, "--ground-truth", tmp / "data/faces_au.npz",
         "--out", tmp / "prepared", "--metrics", tmp / "m/prepare.json"),
        ("split", "--dataset", tmp / "prepared", "--stimuli-per-class", 7, "--val", 0.34, "--test", 0.34,
         "--out", tmp / "split",
         "--metrics", tmp / "m/split.json"),
        ("stimuli", "--dataset", tmp / "prepared", "--splits", tmp / "split", "--display-size", 64,
         "--out", tmp / "stimuli"),
        ("simulate", "--stimuli", tmp / "stimuli", "--participants", 3, "--display-size", 64,
         "--radius", 6, "--out", tmp / "logs", "--metrics", tmp / "m/simulate.json"),
        ("human", "--logs", tmp / "logs", "--stimuli", tmp / "stimuli", "--size", 64, "--radius", 6,
         "--splits", 3, "--out", tmp / "human", "--metrics", tmp / "m/human.json", "--plots", tmp / "plots"),
        ("train", "--dataset", tmp / "prepared", "--splits", tmp / "split", "--model", "tiny", "--steps", 6,
         "--batch-size", 8, "--warmup", 2, "--save-every", 3, "--checkpoints", tmp / "ckpt", "--out", tmp / "model",
         "--metrics", tmp / "m/train.json", "--plots", tmp / "plots"),
        ("network", "--source", "train", "--file", tmp / "model", "--stimuli", tmp / "stimuli", "--logs",
         tmp / "logs", "--out", tmp / "network", "--metrics", tmp / "m/network.json", "--plots", tmp / "plots"),
        ("attribute", "--network", tmp / "network", "--stimuli", tmp / "stimuli", "--areas", "0.1,0.2",
         "--max-iter", 4, "--batch", 28, "--out", tmp / "attribution", "--plots", tmp / "plots"),
        ("sanity", "--network", tmp / "network", "--stimuli", tmp / "stimuli", "--attribution", tmp / "attribution",
         "--pointing-ep-areas", "0.1,0.2", "--randomize-ep-images", 0, "--randomize-draws", 2,
         "--metrics", tmp / "m/sanity.json"),
        ("faithfulness", "--network", tmp / "network", "--stimuli", tmp / "stimuli", "--attribution",
         tmp / "attribution", "--human", tmp / "human", "--steps", 4, "--percentiles", "20,60", "--boot", 100,
         "--batch", 28, "--out", tmp / "faithfulness", "--metrics", tmp / "m/faithfulness.json", "--plots",
         tmp / "plots"),
        ("compare", "--human", tmp / "human", "--human-metrics", tmp / "m/human.json", "--attribution",
         tmp / "attribution", "--network", tmp / "network", "--logs", tmp / "logs", "--stimuli", tmp / "stimuli",
         "--sanity", tmp / "m/sanity.json", "--faithfulness", tmp / "m/faithfulness.json", "--size", 32, "--boot", 100,
         "--grid", '{"map_size": [16, 32], "sigma": [0, 4], "metric": ["dice@0.1", "spearman"]}', "--out", tmp / "compare",
         "--report", tmp / "report", "--metrics", tmp / "m/compare.json", "--plots", tmp / "plots"),
    ]
    for step in steps:
        result = run(*step)
        assert result.exit_code == 0, (step[0], result.output)


def digest(folder: Path) -> dict:
    """File hashes, leaving out Orbax's checkpoints (they carry timestamps; only the resume uses them)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "ckpt" not in p.parts}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    pipeline_in(tmp)
    return tmp


def test_same_params_and_seed_give_identical_bytes(tiny, tmp_path):
    pipeline_in(tmp_path)
    assert digest(tiny) == digest(tmp_path)


def test_outputs_follow_the_reference_layout(tiny):
    stimuli = pd.read_csv(tiny / "stimuli/trials.csv")
    assert list(stimuli.columns) == ["filename", "true", "foil"]
    assert len(stimuli) == 8 * 7
    for name in stimuli["filename"]:
        assert (tiny / "stimuli" / name).exists()
        assert name.split("/")[0].isdigit()
    provenance = json.loads((tiny / "logs/provenance.json").read_text())
    assert provenance["params"]["participants"] == 3 and "not people" in provenance["study"]
    folders = sorted(p.name for p in (tiny / "logs").iterdir() if p.is_dir())
    assert len(folders) == 3 and all(len(f.split("_")[0]) == 6 for f in folders)
    roles = pd.read_csv(tiny / "split/splits.csv")["role"]
    assert (roles == "stimulus").sum() == 56


def test_simulated_logs_have_the_exact_reference_columns_and_types(tiny):
    folder = next(p for p in sorted((tiny / "logs").iterdir()) if p.is_dir())
    choices_text = (folder / "choices.csv").read_text().splitlines()
    clicks_text = (folder / "clicks.csv").read_text().splitlines()
    assert choices_text[0] == "filename,true,false,chosen,correct,time,count"
    assert clicks_text[0] == "filename,x_pos,y_pos,time"
    choices = pd.read_csv(folder / "choices.csv")
    clicks = pd.read_csv(folder / "clicks.csv")
    for col in ("true", "false", "chosen", "count"):
        assert choices[col].dtype == np.int64
    assert choices["correct"].dtype == bool and choices["time"].dtype == np.float64
    assert set(line.split(",")[4] for line in choices_text[1:]) <= {"True", "False"}
    assert clicks["x_pos"].dtype == np.int64 and clicks["y_pos"].dtype == np.int64
    assert clicks["time"].dtype == np.float64
    assert len(choices) == 56 and clicks["filename"].isin(choices["filename"]).all()


def test_metrics_say_the_study_is_synthetic(tiny):
    import json

    summary = json.loads((tiny / "m/simulate.json").read_text())
    assert summary["synthetic"] is True and summary["trials"] == 3 * 56
    assert json.loads((tiny / "m/split.json").read_text())["stimulus"] == 56


def test_human_stage_scores_what_the_simulator_recorded(tiny):
    import json

    sim = json.loads((tiny / "m/simulate.json").read_text())
    people = json.loads((tiny / "m/human.json").read_text())
    assert people["percent_correct"] == sim["percent_correct"]
    assert people["trials"] == sim["trials"] and people["participants"] == 3
    assert -1 <= people["reliability"]["spearman_brown"] <= 1
    with np.load(tiny / "human/maps.npz") as z:
        assert z["image_all"].shape == (56, 64, 64) and z["pair_all"].shape == (56, 64, 64)
        assert (z["image_correct"] <= z["image_all"]).all()
        assert sorted(map(tuple, z["pairs"])) == [(t, f) for t in range(8) for f in range(8) if t != f]
    pairs = pd.read_csv(tiny / "plots/human_pairs.csv")
    assert list(pairs.columns) == ["pair", "accuracy", "lo", "hi", "clicks", "time"] and len(pairs) == 56
    assert (tiny / "plots/human_pair_maps.png").stat().st_size > 1000


def test_help_teaches_every_command():
    for command in ("synth", "prepare", "split", "stimuli", "simulate", "human", "sanity", "compare"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "writ" in result.output.lower()
        assert command == "synth" or "Params (" in result.output


@pytest.mark.parametrize("case", ["missing root", "corrupt image", "bad ground truth", "no dataset",
                                  "splits mismatch", "no trials", "bad behaviour"])
def test_bad_input_exits_2_with_one_line_and_no_output(tiny, tmp_path, case):
    out = tmp_path / "out"
    if case == "missing root":
        args = ("prepare", "--root", tmp_path / "nope", "--out", out)
    elif case == "corrupt image":
        import shutil

        shutil.copytree(tiny / "data/faces", tmp_path / "faces")
        (tmp_path / "faces/3/3_0002.png").write_bytes(b"not a png")
        args = ("prepare", "--root", tmp_path / "faces", "--size", 32, "--out", out)
    elif case == "bad ground truth":
        (tmp_path / "gt.npz").write_bytes(b"junk")
        args = ("prepare", "--root", tiny / "data/faces", "--size", 32, "--ground-truth", tmp_path / "gt.npz",
                "--out", out)
    elif case == "no dataset":
        args = ("split", "--dataset", tmp_path / "missing", "--out", out)
    elif case == "splits mismatch":
        table = pd.read_csv(tiny / "split/splits.csv").iloc[::-1]
        table.to_csv(tmp_path / "splits.csv", index=False)
        args = ("stimuli", "--dataset", tiny / "prepared", "--splits", tmp_path / "splits.csv", "--out", out)
    elif case == "no trials":
        args = ("simulate", "--stimuli", tmp_path, "--out", out)
    else:
        args = ("simulate", "--stimuli", tiny / "stimuli", "--behaviour", '{"bogus": 1}', "--out", out)
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_skip_bad_counts_instead_of_failing(tiny, tmp_path):
    import json
    import shutil

    shutil.copytree(tiny / "data/faces", tmp_path / "faces")
    (tmp_path / "faces/3/3_0002.png").write_bytes(b"not a png")
    result = run("prepare", "--root", tmp_path / "faces", "--size", 32, "--skip-bad", "--out", tmp_path / "o",
                 "--metrics", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["skipped"] == {"unreadable image": 1} and metrics["images"] == 8 * 10 - 1


def test_dvc_stages_declare_params_and_library_deps():
    # which ferjax sources each stage lists is checked against its imports in test_architecture.py
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in ("prepare", "split", "stimuli", "simulate"):
        stage = stages[name]
        assert f"ferjax/cli/{name}.py" in stage["deps"] and f"stages/{name}.py" in stage["deps"]
        assert stage["params"] == [name] and name in params
        assert stage["cmd"] == f"python stages/{name}.py"


def test_train_attribute_compare_outputs(tiny):
    import json

    train = json.loads((tiny / "m/train.json").read_text())
    assert 0 <= train["test_accuracy"] <= 1 and len(train["per_class"]) == 8
    assert np.array(train["confusion"]).shape == (8, 8)
    scored = json.loads((tiny / "m/network.json").read_text())
    assert 0 <= scored["two_afc"]["percent_correct"] <= 1 and "two_afc_seen" in scored
    assert scored["two_afc"]["trials"] == 56 and len(scored["classes_known"]) == 8
    for entry in scored["two_afc"]["per_class"].values():
        lo, hi = entry["ci95"]
        assert 0 <= lo <= entry["percent_correct"] <= hi <= 1
    seen = pd.read_csv(tiny / "network/seen_2afc.csv")
    assert len(seen) == 3 * 56 and seen["model_seen"].isin([0.0, 1.0]).all()
    with np.load(tiny / "attribution/maps.npz") as z:
        assert z["cam_true"].shape == (56, 32, 32) and z["ep_contrast"].shape == (56, 2, 32, 32)
        assert 0 <= z["ep_true"].min() and z["ep_true"].max() <= 1
    ranking = pd.read_csv(tiny / "compare/ranking.csv")
    assert set(ranking["level"]) == {"image", "pair"} and set(ranking["human"]) == {"all", "correct"}
    methods = set(ranking["method"])
    assert {"CAM true", "GradCAM contrast", "EP 0.2 true", "center", "face prior", "shuffled"} <= methods
    compare = json.loads((tiny / "m/compare.json").read_text())
    assert "noise_ceiling" in compare and "CAM true" in compare["methods"]
    sanity = json.loads((tiny / "m/sanity.json").read_text())
    pointing, randomization = sanity["pointing_game"], sanity["randomization"]
    assert set(pointing["methods"]) == {"CAM true", "GradCAM true", "EP 0.1 true", "EP 0.2 true",
                                        "EP 0.1+0.2 true"}   # the masks summed over the areas, as TorchRay's benchmark
    assert pointing["without_regions"] == 7 and pointing["images"] + pointing["misclassified"] == 49
    assert pointing["tolerance_px"] == pytest.approx(15 * 32 / 224)   # Zhang et al.'s 15 px at 224, scaled
    for entry in pointing["methods"].values():
        assert entry["hit_rate"] is None or 0 <= entry["strict_hit_rate"] <= entry["hit_rate"] <= 1
    assert set(randomization["methods"]) == {"CAM true", "GradCAM true"}   # EP: see the one_vs_one test
    for levels in randomization["methods"].values():
        assert set(levels) == {"head", "all"} and all(len(v["draws"]) == 2 for v in levels.values())
    assert (tiny / "plots/attribution_sheet.png").exists() and (tiny / "plots/confusion.png").exists()


def checks_on(network_dir, stimuli_dir, attr_dir, index, maps, **options):
    """The sanity checks on a study's folders, read as `ferjax sanity` reads them."""
    from ferjax.cli.sanity import read_inputs
    from ferjax.explain.checks import sanity_checks

    network, stimuli, ep_settings, ground_truth = read_inputs(network_dir, stimuli_dir, attr_dir, index)
    return sanity_checks(network, stimuli, index, maps, ep_settings, ground_truth, **options)


def test_pointing_game_points_ep_with_the_summed_masks(tiny):
    """EP's pointing map is the sum of its masks at the pointing areas: a saved area is reused, a missing one
    re-run with the attribute stage's settings, so the sum equals the attribute stage's own masks summed."""
    index = pd.read_csv(tiny / "attribution/index.csv")
    with np.load(tiny / "attribution/maps.npz") as z:
        maps = {k: z[k] for k in z.files}
    assert list(maps["areas"]) == [0.1, 0.2]
    only_first = dict(maps, areas=maps["areas"][:1], ep_true=maps["ep_true"][:, :1])   # 0.2 must be re-run
    pointing = checks_on(tiny / "network", tiny / "stimuli", tiny / "attribution", index, only_first,
                         ep_areas=(0.1, 0.2), ep_images=0, draws=1, keep_maps=True)["pointing_game"]
    rows, summed = pointing["rows"], pointing["maps"]["EP 0.1+0.2 true"]
    assert len(rows) >= 5 and summed.shape == (len(rows), 32, 32)
    np.testing.assert_allclose(summed, maps["ep_true"][rows].sum(1), atol=1e-5)
    np.testing.assert_array_equal(pointing["maps"]["CAM true"], maps["cam_true"][rows])


def test_compare_reports_agreement_robustness_and_a_verdict(tiny):
    compare = json.loads((tiny / "m/compare.json").read_text())
    ec = compare["agreement"]["error_consistency"]
    for key in ("people", "network", "network_seen"):
        lo, hi = ec[key]["ci95"]
        assert -1 <= lo <= ec[key]["mean"] <= hi <= 1
        assert "per_participant" not in ec[key] and "per_pair" not in ec[key]   # lists stay out of the metrics
    assert ec["people"]["pairs"] == 3
    rob = compare["robustness"]
    # 2 metrics x 2 human x 2 sizes x 2 sigmas x 2 areas x 2 levels x 2 targets
    assert rob["variants"] == 2 * 2 * 2 * 2 * 2 * 2 * 2 == len(pd.read_csv(tiny / "compare/variants.csv"))
    assert sum(rob["first_among_methods"].values()) == pytest.approx(1.0)
    assert sum(rob["first_among_all"].values()) == pytest.approx(1.0)
    assert rob["most_influential"] in rob["flip_rate"]
    # per method the clearly-first and tie shares; a variant is clearly first or a tie
    assert set(rob["clearly_first"]) == set(rob["tied_first"]) == {"CAM", "GradCAM", "EP"}
    assert max(rob["clearly_first"].values()) + rob["tie_at_top"] <= 1 + 1e-9
    variants = pd.read_csv(tiny / "compare/variants.csv")
    assert {"call_top", "call_clearly_first", "call_best_set"} <= set(variants.columns)
    verdict = compare["verdict"]
    assert verdict["leader"] in {"CAM", "GradCAM", "EP"} and verdict["ep_vs_cam"]["call"] in ("EP", "CAM", "tie")
    assert (verdict["ep_vs_cam"]["call"] == "tie") == (verdict["ep_vs_cam"]["lo"] <= 0 <= verdict["ep_vs_cam"]["hi"])
    base = verdict["baseline"]
    assert verdict["text"].startswith(f"The {base['name']} baseline") == base["beats_every_method"]
    assert set(verdict["crossfit"]["chosen"]) == {"CAM", "GradCAM", "EP"}
    pairs = pd.read_csv(tiny / "compare/pairwise.csv")
    assert len(pairs) == 11 * 10 // 2   # 8 method settings (2 EP areas) and 3 baselines, every pair once
    pvn = compare["people_vs_network"]
    assert pvn["participants"] == 3 and pvn["glmm"]["ci90"][0] <= pvn["glmm"]["delta"] <= pvn["glmm"]["ci90"][1]
    assert pvn["tost"]["margin"] == 0.05 and isinstance(pvn["tost"]["equivalent"], bool)
    # what the data are: first in the metrics, and said in the verdict's words
    data = compare["data"]
    assert data["participants"] == "simulated" and data["faces"] == "rendered"
    assert "simulated" in data["text"].lower() and "rendered" in data["text"] and "docs/study.md" in data["text"]
    assert "the simulated participants" in verdict["text"] and "people's maps" not in verdict["text"]
    faith = json.loads((tiny / "m/faithfulness.json").read_text())
    assert faith["images"] == 56 and {"CAM true", "EP 0.1 true", "face prior", "people"} <= set(faith["methods"])
    assert faith["methods"]["CAM true"] == faith["methods"]["GradCAM true"]   # the same map up to scale
    assert "Faithfulness to the network" in verdict["text"]
    per_person = pd.read_csv(tiny / "compare/agreement.csv")
    assert len(per_person) == 3 and {"kappa_network", "kappa_network_seen"} <= set(per_person.columns)


def test_report_is_self_contained_and_answers_first(tiny):
    import re

    from ferjax.report.document import FIGURES

    text = (tiny / "report/index.html").read_text()
    # nothing is requested from anywhere: every image is a data URI, no link, stylesheet, font or remote script
    sources = re.findall(r'\ssrc="([^"]*)"', text)
    assert len(sources) >= 8 and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
                                     for s in sources)
    code = re.sub(r'src="data:[^"]*"', 'src=""', text)    # base64 holds '/' and anything else
    assert not re.search(r"(https?:)?//[a-z0-9]", code, re.I)
    assert not re.search(r"<link|@import|url\((?!#)|<iframe|fetch\(|XMLHttpRequest|<object|<embed", code, re.I)
    for fig in FIGURES:
        assert f'id="{fig}"' in text, fig
    # what the data are, then the answer, before any table; and no p-value prints as a bare zero
    assert text.index('id="data-source"') < text.index('class="lead"') < text.index('id="fig-answer"') \
        < text.index("<table")
    banner = text[text.index('id="data-source"'):text.index('class="lead"')]
    assert "Simulated participants, rendered faces" in banner and "docs/study.md" in banner
    assert "Which differences are clear?" in text and "clearly first" in text and "deletion" in text
    p_cells = [cell for headers, rows in _tables(text) for row in rows
               for h, cell in zip(headers, row) if h.startswith("p (")]
    assert p_cells and all(c == "" or c == "< 0.001" or float(c) >= 0.001 for c in p_cells)
    assert "p (Wilcoxon vs best, Holm)" in text and "mcnemar_p" not in text


def test_a_users_study_reports_counts_and_exclusions_instead(tiny, tmp_path):
    """The same logs as a user's (no simulate provenance beside them), one participant excluded as incomplete:
    metrics/compare.json and the report's first screen give the counts and the exclusion, not "simulated"."""
    import shutil

    from ferjax.people import clicklogs

    logs = tmp_path / "logs"
    shutil.copytree(tiny / "logs", logs, ignore=shutil.ignore_patterns("provenance.json"))
    names = sorted(clicklogs.load_logs(logs)[0]["participant"].unique())
    pd.DataFrame({"participant": names, "status": ["incomplete"] + ["completed"] * (len(names) - 1),
                  "catch_total": 0, "catch_failed": 0}).to_csv(logs / "participants.csv", index=False)
    steps = [("human", "--logs", logs, "--size", 64, "--radius", 6, "--splits", 3, "--completed-only",
              "--out", tmp_path / "human", "--metrics", tmp_path / "human.json"),
             ("compare", "--human", tmp_path / "human", "--human-metrics", tmp_path / "human.json", "--attribution",
              tiny / "attribution", "--network", tiny / "network", "--logs", logs, "--stimuli", tiny / "stimuli",
              "--dataset", "my faces", "--size", 32, "--boot", 100, "--no-network-effects",
              "--grid", '{"map_size": [32], "sigma": [0], "metric": ["dice@0.1"]}', "--out", tmp_path / "compare",
              "--report", tmp_path / "report", "--metrics", tmp_path / "compare.json")]
    for step in steps:
        result = run(*step)
        assert result.exit_code == 0, (step[0], result.output)
    data = json.loads((tmp_path / "compare.json").read_text())["data"]
    assert data["real_people"] and data["participants"] == "recorded" and data["excluded_participants"] == 1
    assert data["participants_analysed"] == len(names) - 1
    text = (tmp_path / "report/index.html").read_text()
    banner = text[text.index('id="data-source"'):text.index('class="lead"')]
    assert f"{len(names) - 1} participants analysed of {len(names)}, 1 excluded (incomplete 1)" in banner
    assert "simulat" not in banner.lower() and "rendered from facial action units" in banner   # the tiny study's faces
    said = json.loads((tmp_path / "compare.json").read_text())["verdict"]["text"]
    assert "simulated" not in said and "people's maps" in said


def _tables(text):
    """(headers, rows of cell texts) of every table in an HTML text."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append(([], []))
            elif tag == "tr" and self.tables:
                self.tables[-1][1].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                headers, rows = self.tables[-1]
                (headers if tag == "th" else rows[-1]).append(self.cell.strip())
                self.cell = None

    parser = Tables()
    parser.feed(text)
    return [(h, [r for r in rows if r]) for h, rows in parser.tables]


def test_report_renders_in_a_real_browser_without_the_network(tiny, tmp_path):
    import os

    from conftest import missing_reference

    if not (os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver")):
        missing_reference("needs apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from ferjax.report.document import FIGURES

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        for width in (1280, 390):
            driver.set_window_size(width, 900)
            driver.get((tiny / "report/index.html").as_uri())
            # every resource the page loaded is embedded: none came over the network
            names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            assert all(n.startswith("data:") for n in names), names
            loaded = driver.execute_script(
                "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            assert len(loaded) >= 8 and all(loaded)
            for fig in FIGURES:
                box = driver.execute_script(f"var r = document.getElementById('{fig}').getBoundingClientRect();"
                                            "return [r.width, r.height]")
                assert box[0] > 100 and box[1] > 50, (width, fig, box)
            # the page itself never scrolls sideways: wide tables scroll in their own box
            assert driver.execute_script("return document.documentElement.scrollWidth") <= width + 1
            # a click on a header sorts the table
            driver.execute_script("document.querySelector('table.sortable th:nth-child(2)').click()")
    finally:
        driver.quit()


def test_one_vs_one_trains_and_is_explained_end_to_end(tiny, tmp_path):
    import json

    result = run("train", "--dataset", tiny / "prepared", "--splits", tiny / "split",
                 "--model", "tiny", "--mode", "one_vs_one", "--steps", 3, "--batch-size", 4, "--warmup", 1,
                 "--out", tmp_path / "model", "--metrics", tmp_path / "train.json")
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "model/model.json").read_text())
    assert spec["mode"] == "one_vs_one"
    result = run("network", "--file", tmp_path / "model", "--stimuli", tiny / "stimuli", "--out",
                 tmp_path / "network", "--metrics", tmp_path / "network.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "network.json").read_text())["two_afc"]["percent_correct"] >= 0
    result = run("attribute", "--network", tmp_path / "network", "--stimuli", tiny / "stimuli", "--max-iter", 2,
                 "--ep-targets", "true", "--out", tmp_path / "attribution")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "attribution/maps.npz") as z:
        assert z["gradcam_contrast"].shape == (56, 32, 32) and np.isfinite(z["ep_true"]).all()
        maps = {k: z[k] for k in z.files}
    checks = checks_on(tmp_path / "network", tiny / "stimuli", tmp_path / "attribution",
                       pd.read_csv(tmp_path / "attribution/index.csv"), maps, ep_images=2, draws=1)
    assert checks["pointing_game"]["images"] + checks["pointing_game"]["misclassified"] == 49
    assert checks["randomization"]["methods"]["EP 0.1 true"]["all"]["maps"] == 2
    assert checks["randomization"]["methods"]["CAM true"]["head"]["maps"] == 56


def test_checkpoints_resume_only_the_same_code(tiny, tmp_path, monkeypatch):
    from ferjax.cli import train as training

    def train(ckpt):
        result = run("train", "--dataset", tiny / "prepared", "--splits", tiny / "split",
                     "--model", "tiny", "--steps", 3, "--batch-size", 8, "--warmup", 1,
                     "--save-every", 3, "--checkpoints", ckpt, "--out", tmp_path / "model", "--metrics",
                     tmp_path / "train.json")
        assert result.exit_code == 0, result.output
        return sorted(p.name for p in ckpt.iterdir()), json.loads((tmp_path / "train.json").read_text())

    first, m1 = train(tmp_path / "ckpt")
    again, m2 = train(tmp_path / "ckpt")  # same code: resumes the finished run, which still reports val
    assert again == first and len(first) == 1 and m2["val_accuracy"] == m1["val_accuracy"] is not None
    monkeypatch.setattr(training, "source_digest", lambda: "edited ferjax")
    edited, _ = train(tmp_path / "ckpt")  # changed code: a new run, not the old one's checkpoint
    assert len(edited) == 2 and set(first) < set(edited)


def test_train_rejects_a_mismatched_split(tiny, tmp_path):
    table = pd.read_csv(tiny / "split/splits.csv").iloc[:-1]
    table.to_csv(tmp_path / "splits.csv", index=False)
    result = run("train", "--dataset", tiny / "prepared", "--splits", tmp_path / "splits.csv",
                 "--model", "tiny", "--steps", 2, "--out", tmp_path / "model")
    assert result.exit_code == 2 and "splits.csv" in result.output and not (tmp_path / "model").exists()


def test_no_param_is_named_size_or_nfiles():
    # DVC's run cache drops keys named `size` and `nfiles` from a stage's hash at
    # any depth (treeverse/dvc#10296), so `dvc exp run -S compare.size=...` would
    # silently restore the outputs of another size. Such params must not exist.
    def keys(d, prefix=""):
        for k, v in d.items():
            yield prefix + k
            if isinstance(v, dict):
                yield from keys(v, prefix + k + ".")

    with open(Path(__file__).parent.parent / "params.yaml") as f:
        bad = [k for k in keys(yaml.safe_load(f)) if k.rsplit(".", 1)[-1] in ("size", "nfiles")]
    assert not bad, bad


def _foreign_network():
    """A small network in the shape of fer's FER2013 one (tests/test_importers.py imports that one): 64x64
    grayscale in, FER2013's 7 classes out, a head of a 3x3 convolution then global average pooling."""
    import jax

    from ferjax.networks.importers import LABEL_MAPS
    from ferjax.networks.interface import Head, Network

    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    params = {"trunk": {"kernel": jax.random.normal(keys[0], (3, 3, 1, 8)) * 0.5},
              "top": {"kernel": jax.random.normal(keys[1], (3, 3, 8, 7)) * 0.2}}

    def conv(x, w, stride):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    spec = {"source": "jax", "layer": "trunk", "size": 64, "channels": 1, "num_outputs": 7,
            "labels": LABEL_MAPS["fer2013"], "head_params": ["top"]}
    return Network(lambda p, x: jax.nn.relu(conv((x - 0.5) * 2, p["trunk"]["kernel"], 4)),
                   Head(lambda p, a: conv(a, p["top"]["kernel"], 1).mean(axis=(1, 2))), params, spec)


def test_an_imported_network_goes_through_the_pipeline(tiny, tmp_path):
    """A network from elsewhere, saved in ferjax's exported format, explained and compared on the tiny study:
    its own 64x64 grayscale input, FER2013's classes mapped to AffectNet's, contempt left out, no CAM."""
    from ferjax.networks.importers import exported

    exported.save(tmp_path / "fer", _foreign_network())
    steps = [("network", "--source", "exported", "--file", tmp_path / "fer", "--stimuli", tiny / "stimuli", "--logs",
              tiny / "logs", "--out", tmp_path / "network", "--metrics", tmp_path / "network.json"),
             ("attribute", "--network", tmp_path / "network", "--stimuli", tiny / "stimuli", "--areas", "0.1",
              "--max-iter", 2, "--step", 2, "--sigma", 6, "--scale-to", 64, "--batch", 42,
              "--out", tmp_path / "attribution"),
             ("sanity", "--network", tmp_path / "network", "--stimuli", tiny / "stimuli", "--attribution",
              tmp_path / "attribution", "--randomize-ep-images", 0, "--randomize-draws", 1, "--pointing-ep-areas", "",
              "--metrics", tmp_path / "sanity.json"),
             ("compare", "--human", tiny / "human", "--human-metrics", tiny / "m/human.json", "--attribution",
              tmp_path / "attribution", "--network", tmp_path / "network", "--logs", tiny / "logs", "--stimuli",
              tiny / "stimuli", "--sanity", tmp_path / "sanity.json", "--size", 32, "--boot", 100,
              "--grid", '{"map_size": [32], "sigma": [0]}', "--out", tmp_path / "compare",
              "--metrics", tmp_path / "compare.json", "--report", tmp_path / "report")]
    outputs = []
    for step in steps:
        result = run(*step)
        assert result.exit_code == 0, (step[0], result.output)
        outputs.append(result.output)
    scored = json.loads((tmp_path / "network.json").read_text())
    assert "contempt" not in scored["classes_known"] and len(scored["classes_known"]) == 7
    assert scored["input"] == [64, 64, 1] and scored["two_afc"]["trials"] == 42     # 14 trials involve contempt
    index = pd.read_csv(tmp_path / "attribution/index.csv")
    assert len(index) == 42 and not ((index["true"] == 7) | (index["foil"] == 7)).any()
    with np.load(tmp_path / "attribution/maps.npz") as z:
        assert "cam_true" not in z.files and z["gradcam_true"].shape == (42, 64, 64)
    assert "CAM left out" in outputs[1] and "14 left out" in outputs[1]
    compare = json.loads((tmp_path / "compare.json").read_text())
    assert compare["accuracy"]["trials_left_out"] == 3 * 14
    assert set(compare["robustness"]["first_among_methods"]) == {"GradCAM", "EP"}
    randomization = json.loads((tmp_path / "sanity.json").read_text())["randomization"]["methods"]
    assert set(randomization) == {"GradCAM true"}      # no CAM for this head


def test_network_rejects_a_file_that_is_not_a_model(tiny, tmp_path):
    junk = tmp_path / "model.h5"
    junk.write_bytes(b"junk")
    out = tmp_path / "network"
    result = run("network", "--source", "keras", "--file", junk, "--layer", "add_4", "--stimuli", tiny / "stimuli",
                 "--out", out)
    assert result.exit_code == 2 and not out.exists()
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model.h5" in errors[0], result.output
    result = run("network", "--source", "exported", "--file", tmp_path, "--stimuli", tiny / "stimuli", "--out", out)
    assert result.exit_code == 2 and "model.json: file not found" in result.output and not out.exists()


def test_network_rejects_a_network_that_does_not_fit(tiny, tmp_path):
    """A PyTorch network given an input size it cannot take, or a label map of the wrong length: one line, no
    output."""
    import importlib.util

    from conftest import missing_reference

    if importlib.util.find_spec("torchax") is None:
        missing_reference("needs pip install 'ferjax[torch]'")
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 32 * 32, 8))   # a flatten-then-dense head: 32x32 inputs only
    torch.save(net, tmp_path / "flat.pt")
    out = tmp_path / "network"
    common = ["network", "--source", "torch", "--file", tmp_path / "flat.pt", "--allow-pickle", "--layer", "1",
              "--input-channels", 1,
              "--stimuli", tiny / "stimuli", "--out", out]
    result = run(*common, "--input-size", 48)
    assert result.exit_code == 2 and not out.exists()
    assert result.output.startswith(f"error: {tmp_path / 'flat.pt'}: input: the network does not take 1x48x48 "
                                    "images (mat1 and mat2 shapes cannot be multiplied"), result.output
    result = run(*common, "--input-size", 32, "--labels", "fer2013")
    assert result.exit_code == 2 and not out.exists()
    assert result.output.strip().endswith("labels: the label map lists 7 classes but the network has 8 outputs "
                                          "(give the AffectNet class (or null) of each output)"), result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run(*common, "--input-size", 32)   # what it was built for: imported, explained at its ReLU
    assert result.exit_code == 0, result.output


def _torch_checkpoint(path, **kwargs):
    """A state_dict checkpoint of models/torch/expression_cnn.py's network (random weights), as scripts save it."""
    import importlib.util

    from conftest import missing_reference

    if importlib.util.find_spec("torchax") is None:
        missing_reference("needs pip install 'ferjax[torch]'")
    import torch

    from models.torch import expression_cnn

    torch.manual_seed(0)
    net = expression_cnn.randomise(expression_cnn.ExpressionCNN(**kwargs))
    torch.save({"epoch": 1, "state_dict": net.state_dict()}, path)
    return ["--source", "torch", "--file", path, "--model", "models.torch.expression_cnn:ExpressionCNN",
            "--model-kwargs", json.dumps(kwargs), "--layer", "blocks[-1]", "--input-channels", 1]


@pytest.mark.parametrize("final", [None, "softmax"])
def test_a_state_dict_checkpoint_goes_through_the_network_stage(tiny, tmp_path, final):
    source = _torch_checkpoint(tmp_path / "ckpt.pt", **({"final": final} if final else {}))
    result = run("network", *source, "--input-size", 32, "--stimuli", tiny / "stimuli", "--logs", tiny / "logs",
                 "--out", tmp_path / "network", "--metrics", tmp_path / "network.json")
    assert result.exit_code == 0, result.output
    assert ("logits before the final softmax(dim=1) (left out)" in result.output) == (final == "softmax")
    assert json.loads((tmp_path / "network.json").read_text())["input"] == [32, 32, 1]
    spec = json.loads((tmp_path / "network/model.json").read_text())
    assert spec["model"] == "models.torch.expression_cnn:ExpressionCNN" and spec["layer"] == "blocks.2"
    provenance = json.loads((tmp_path / "network/provenance.json").read_text())["params"]
    assert provenance["model_kwargs"] == ({"final": final} if final else {})


def test_a_64x48_network_goes_through_every_later_stage(tiny, tmp_path):
    source = _torch_checkpoint(tmp_path / "ckpt.pt")
    steps = [("network", *source, "--input-size", "64x48", "--stimuli", tiny / "stimuli", "--logs", tiny / "logs",
              "--out", tmp_path / "network", "--metrics", tmp_path / "network.json"),
             ("attribute", "--network", tmp_path / "network", "--stimuli", tiny / "stimuli", "--areas", "0.1",
              "--max-iter", 2, "--batch", 56, "--out", tmp_path / "attribution", "--plots", tmp_path / "plots"),
             ("sanity", "--network", tmp_path / "network", "--stimuli", tiny / "stimuli", "--attribution",
              tmp_path / "attribution", "--randomize-ep-images", 2, "--randomize-draws", 1,
              "--pointing-ep-areas", "0.1", "--metrics", tmp_path / "sanity.json"),
             ("compare", "--human", tiny / "human", "--human-metrics", tiny / "m/human.json", "--attribution",
              tmp_path / "attribution", "--network", tmp_path / "network", "--logs", tiny / "logs", "--stimuli",
              tiny / "stimuli", "--sanity", tmp_path / "sanity.json", "--size", 32, "--boot", 100,
              "--grid", '{"map_size": [32], "sigma": [0]}', "--out", tmp_path / "compare",
              "--metrics", tmp_path / "compare.json", "--report", tmp_path / "report")]
    for step in steps:
        result = run(*step)
        assert result.exit_code == 0, (step[0], result.output)
    assert json.loads((tmp_path / "network.json").read_text())["input"] == [64, 48, 1]
    with np.load(tmp_path / "attribution/maps.npz") as z:
        assert z["gradcam_true"].shape == (56, 64, 48) and z["ep_true"].shape == (56, 1, 64, 48)
        assert "cam_true" in z.files   # its head is pooling and a linear layer
    checks = json.loads((tmp_path / "sanity.json").read_text())
    assert checks["pointing_game"]["tolerance_px"] == pytest.approx(15 * 56 / 224)   # the maps' mean side
    assert (tmp_path / "report/index.html").exists()
