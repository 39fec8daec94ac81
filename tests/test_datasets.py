"""Tests for ferjax.faces.datasets: each loader on fixtures written in its real on-disk format."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ferjax.faces.datasets import FORMATS, load_dataset
from ferjax.plumbing.errors import InputError

LANDMARKS = ";".join(f"{i + 0.5:.1f}" for i in range(136))
AFFECTNET_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
)
# expression -> image path; folder numbers sort differently as text (1000 < 12) and as numbers (12 < 1000)
AFFECTNET_IMAGES = {
    0: "3/5c8f1e0a7b9d2e4f6a8c0b1d3e5f7a9c1b3d5e7f9a1c3e5b7d9f1a3c.jpg",
    1: "689/737db2483489148d783ef278f43f486c0a97e140fc4b6b61b84363ca.jpg",
    2: "12/a1b2c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabb.jpg",
    3: "1000/ffe1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5.png",
    4: "45/0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f901a2b.jpg",
    5: "101/bead5e5eaf0dc0ffee0ddba11cafef00d1234567890abcdef123456.jpg",
    6: "7/c0c0a0b0d0e0f0a1b1c1d1e1f1a2b2c2d2e2f2a3b3c3d3e3f3a4b4c4.jpeg",
    7: "1201/deadbeef00112233445566778899aabbccddeeff0011223344556677.jpg",
}
# the expressions in natural order of their folders: 3, 7, 12, 45, 101, 689, 1000, 1201
AFFECTNET_ORDER = [0, 6, 2, 4, 5, 1, 3, 7]
RAFDB_LINES = ["train_00001.jpg 5", "train_00002.jpg 1", "train_00010.jpg 4", "",
               "test_0001.jpg 7", "test_0002.jpg 6", "test_0003.jpg 2", "test_0004.jpg 3"]


def write_image(path, value=100, size=(10, 12), mode="L"):
    """Write a uniform image of ``value`` (format from the suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB" and isinstance(value, int):
        value = (value, value, value)
    Image.new(mode, size, value).save(path)
    return path


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def gray(expression):
    return 20 + 25 * expression


def affectnet_row(path, expression, *, landmarks=LANDMARKS):
    return f"{path},12,14,80,80,{landmarks},{expression},0.25,-0.1"


def make_affectnet(root, extra=(), name="training.csv"):
    """8 good rows (one per class) in shuffled order, rows for expressions 8, 8, 9, 10, then ``extra``."""
    rows = [affectnet_row(AFFECTNET_IMAGES[e], e) for e in (5, 2, 7, 0, 3, 1, 6, 4)]
    rows[3:3] = [affectnet_row("9/none.jpg", 8), affectnet_row("9/none2.jpg", 8)]
    rows += [affectnet_row("9/uncertain.jpg", 9), affectnet_row("9/nonface.jpg", 10)]
    for expression, path in AFFECTNET_IMAGES.items():
        write_image(root / path, gray(expression))
    return write_lines(root / name, [AFFECTNET_HEADER, *rows, *extra])


def fer_pixels(value):
    return " ".join([str(value)] * 2304)


def make_fer2013(root, extra=(), header="emotion,pixels,Usage"):
    """11 rows: emotions 0..6,0..3; row k uniform gray 10*k; Training x7, PublicTest x2, PrivateTest x2."""
    usage = ["Training"] * 7 + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    rows = [f"{k % 7},{fer_pixels(10 * (k + 1))},{usage[k]}" for k in range(11)]
    return write_lines(root / "fer2013.csv", [header, *rows, *extra])


def make_rafdb(root, extra=()):
    """7 labelled images (blank line 4); aligned for some, original for others, both for train_00010."""
    for stem, value in [("train_00001", 201), ("train_00010", 210), ("test_0001", 211), ("test_0003", 213)]:
        write_image(root / "Image" / "aligned" / f"{stem}_aligned.jpg", value, size=(10, 10), mode="RGB")
    for stem, value in [("train_00002", 52), ("train_00010", 60), ("test_0002", 62), ("test_0004", 64)]:
        write_image(root / "Image" / "original" / f"{stem}.jpg", value, size=(12, 9), mode="RGB")
    return write_lines(root / "EmoLabel" / "list_patition_label.txt", [*RAFDB_LINES, *extra])


def make_reference(root):
    write_image(root / "0" / "img10.png", 100)
    write_image(root / "0" / "img2.png", 100)
    write_image(root / "3" / "face.jpg", 150)
    write_image(root / "7" / "face.jpeg", 50)
    write_image(root / ".cache" / "junk.png", 0)
    (root / "3" / ".DS_Store").write_bytes(b"\0\1")


def make_folders(root):
    for folder, value in [("Happy", 10), ("sadness", 20), ("ANGRY", 30), ("neutral", 40),
                          ("Contempt", 50), ("fearful", 60), ("surprised", 70), ("disgust", 80)]:
        write_image(root / folder / "a.png", value)
        write_image(root / folder / "b.jpg", value)


def test_reference_loads_labels_names_and_pixels(tmp_path):
    make_reference(tmp_path)
    ds = load_dataset("reference", tmp_path, size=16)
    assert ds.names == ["0/img2.png", "0/img10.png", "3/face.jpg", "7/face.jpeg"]
    assert ds.labels.tolist() == [0, 0, 3, 7] and ds.labels.dtype == np.int32
    assert ds.images.shape == (4, 16, 16, 1) and ds.images.dtype == np.uint8
    assert ds.split == ["", "", "", ""] and ds.skipped == {}
    assert (ds.images[:2] == 100).all()
    assert np.abs(ds.images[2].astype(int) - 150).max() <= 2
    assert np.abs(ds.images[3].astype(int) - 50).max() <= 2


def test_channels_one_and_three(tmp_path):
    write_image(tmp_path / "1" / "rgb.png", (10, 120, 230), mode="RGB")
    write_image(tmp_path / "2" / "gray.png", 77)
    rgb = load_dataset("reference", tmp_path, size=5, channels=3)
    assert rgb.images.shape == (2, 5, 5, 3)
    assert (rgb.images[0] == [10, 120, 230]).all() and (rgb.images[1] == 77).all()
    gray1 = load_dataset("reference", tmp_path, size=5, channels=1)
    luma = Image.new("RGB", (1, 1), (10, 120, 230)).convert("L").getpixel((0, 0))
    assert gray1.images.shape == (2, 5, 5, 1)
    assert (gray1.images[0] == luma).all() and (gray1.images[1] == 77).all()


def test_resize_is_bilinear(tmp_path):
    write_image(tmp_path / "0" / "x.png", 0, size=(8, 8))
    Image.fromarray(np.tile(np.array([0, 200], np.uint8), (2, 1))).save(tmp_path / "0" / "x.png")
    image = load_dataset("reference", tmp_path, size=4).images[0, :, :, 0]
    expected = np.asarray(Image.open(tmp_path / "0" / "x.png").resize((4, 4), Image.Resampling.BILINEAR))
    assert (image == expected).all() and len(np.unique(image)) > 2


def test_folders_matches_class_names_and_synonyms(tmp_path):
    make_folders(tmp_path)
    ds = load_dataset("folders", tmp_path, size=6)
    assert ds.names[:4] == ["ANGRY/a.png", "ANGRY/b.jpg", "Contempt/a.png", "Contempt/b.jpg"]
    by_folder = {name.split("/")[0]: label for name, label in zip(ds.names, ds.labels.tolist())}
    assert by_folder == {"Happy": 1, "sadness": 2, "ANGRY": 6, "neutral": 0, "Contempt": 7,
                         "fearful": 4, "surprised": 3, "disgust": 5}
    assert ds.images.shape == (16, 6, 6, 1)
    assert ds.images[ds.names.index("fearful/a.png")].min() == 60


def test_affectnet_labels_names_split_and_skipped_classes(tmp_path):
    make_affectnet(tmp_path)
    ds = load_dataset("affectnet", tmp_path, size=8)
    assert ds.names == [AFFECTNET_IMAGES[e] for e in AFFECTNET_ORDER]
    assert ds.labels.tolist() == AFFECTNET_ORDER
    assert ds.split == ["train"] * 8
    assert ds.skipped == {"non-face": 1, "none": 2, "uncertain": 1}
    means = ds.images.reshape(8, -1).mean(axis=1)
    assert np.abs(means - [gray(e) for e in AFFECTNET_ORDER]).max() <= 2


def test_affectnet_validation_file_gives_val_split(tmp_path):
    csv = make_affectnet(tmp_path / "data", name="validation.csv")
    ds = load_dataset("affectnet", tmp_path / "data", annotations=csv, size=8)
    assert ds.split == ["val"] * 8


def test_fer2013_maps_labels_usage_and_rows(tmp_path):
    make_fer2013(tmp_path)
    ds = load_dataset("fer2013", tmp_path, size=24)
    assert ds.names == [f"row {k}" for k in range(1, 12)]
    assert ds.labels.tolist() == [6, 5, 4, 1, 2, 3, 0, 6, 5, 4, 1]
    assert ds.split == ["train"] * 7 + ["val"] * 2 + ["test"] * 2
    assert ds.images.shape == (11, 24, 24, 1)
    assert [int(ds.images[k].min()) for k in range(11)] == [10 * (k + 1) for k in range(11)]
    assert (ds.images.min(axis=(1, 2, 3)) == ds.images.max(axis=(1, 2, 3))).all()


def test_fer2013_pixels_are_row_major_48x48_and_usage_optional(tmp_path):
    pixels = np.arange(2304) % 256
    write_lines(tmp_path / "fer2013.csv", ["emotion,pixels", "3," + " ".join(map(str, pixels))])
    ds = load_dataset("fer2013", tmp_path, size=48)
    assert (ds.images[0, :, :, 0] == pixels.reshape(48, 48)).all()
    assert ds.labels.tolist() == [1] and ds.split == [""]
    assert load_dataset("fer2013", tmp_path, size=4, channels=3).images.shape == (1, 4, 4, 3)


def test_rafdb_prefers_aligned_then_original(tmp_path):
    make_rafdb(tmp_path)
    ds = load_dataset("rafdb", tmp_path, size=8, channels=3)
    assert ds.names == ["Image/aligned/test_0001_aligned.jpg", "Image/aligned/test_0003_aligned.jpg",
                        "Image/aligned/train_00001_aligned.jpg", "Image/aligned/train_00010_aligned.jpg",
                        "Image/original/test_0002.jpg", "Image/original/test_0004.jpg",
                        "Image/original/train_00002.jpg"]
    assert ds.labels.tolist() == [0, 4, 2, 1, 6, 5, 3]
    assert ds.split == ["test", "test", "train", "train", "test", "test", "train"]
    means = ds.images.reshape(7, -1).mean(axis=1)
    assert np.abs(means - [211, 213, 201, 210, 62, 64, 52]).max() <= 2


def test_custom_annotation_path_for_text_formats(tmp_path):
    make_rafdb(tmp_path / "raf")
    moved = tmp_path / "labels.txt"
    (tmp_path / "raf" / "EmoLabel" / "list_patition_label.txt").rename(moved)
    assert len(load_dataset("rafdb", tmp_path / "raf", annotations=moved, size=4).names) == 7
    make_fer2013(tmp_path / "fer")
    assert len(load_dataset("fer2013", tmp_path / "fer", annotations=str(tmp_path / "fer" / "fer2013.csv"),
                            size=4).names) == 11


def corrupt(path, data=b"this is not an image"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def truncated_jpeg(path):
    write_image(path, 90, size=(40, 40))
    corrupt(path, path.read_bytes()[:200])


def add_affectnet(line, image=None):
    def make(root):
        if image:
            image(root)
        make_affectnet(root, [line])
    return make


def add_fer(line):
    return lambda root: make_fer2013(root, [line])


def add_rafdb(line, image=None):
    def make(root):
        if image:
            image(root)
        make_rafdb(root, [line])
    return make


ANY = AFFECTNET_IMAGES[1]
CSV, FER, TXT = "{root}/training.csv", "{root}/fer2013.csv", "{root}/EmoLabel/list_patition_label.txt"
ROW_LEVEL = [
    ("affectnet", add_affectnet(affectnet_row(ANY, "abc")), CSV + ": row 13: expression 'abc' is not an integer",
     "bad value"),
    ("affectnet", add_affectnet(affectnet_row(ANY, 11)), CSV + ": row 13: expression 11 is outside 0..10", "bad label"),
    ("affectnet", add_affectnet(affectnet_row(ANY, -1)), CSV + ": row 13: expression -1 is outside", "bad label"),
    ("affectnet", add_affectnet(affectnet_row("", 2)), CSV + ": row 13: subDirectory_filePath is empty", "bad value"),
    ("affectnet", add_affectnet(affectnet_row("5/gone.jpg", 2)),
     CSV + ": row 13: image file not found: {root}/5/gone.jpg", "missing image"),
    ("affectnet", add_affectnet(affectnet_row("5/bad.jpg", 2), lambda r: corrupt(r / "5" / "bad.jpg")),
     "{root}/5/bad.jpg: cannot read image", "unreadable image"),
    ("affectnet", add_affectnet(affectnet_row("5/cut.jpg", 2), lambda r: truncated_jpeg(r / "5" / "cut.jpg")),
     "{root}/5/cut.jpg: cannot read image", "unreadable image"),
    ("affectnet", add_affectnet(affectnet_row(ANY, 1)), CSV + f": row 13: '{ANY}' is listed twice (also at row 8)",
     "duplicate"),
    ("affectnet", add_affectnet(f"{ANY},1,2"), CSV + ": row 13: has 3 fields", "bad row"),
    ("fer2013", add_fer("3," + " ".join(["9"] * 2303) + ",Training"),
     FER + ": row 12: pixels has 2303 values, expected 2304", "bad value"),
    ("fer2013", add_fer("3," + fer_pixels(9)[:-1] + "256,Training"),
     FER + ": row 12: pixels has a value outside 0..255", "bad value"),
    ("fer2013", add_fer("3,-1" + fer_pixels(9)[1:] + ",Training"), FER + ": row 12: pixels has a value outside",
     "bad value"),
    ("fer2013", add_fer("3,1.5" + fer_pixels(9)[1:] + ",Training"), FER + ": row 12: pixels has non-integer values",
     "bad value"),
    ("fer2013", add_fer("7," + fer_pixels(9) + ",Training"), FER + ": row 12: emotion 7 is outside 0..6", "bad label"),
    ("fer2013", add_fer("x," + fer_pixels(9) + ",Training"), FER + ": row 12: emotion 'x' is not an integer",
     "bad value"),
    ("fer2013", add_fer("3," + fer_pixels(9) + ",Validation"), FER + ": row 12: Usage 'Validation' is not one of",
     "bad value"),
    ("fer2013", add_fer("3,Training"), FER + ": row 12: has 2 fields, the header 3", "bad row"),
    ("rafdb", add_rafdb("train_00003.jpg 5 extra"), TXT + ": line 9: expected '<image name> <label>'", "bad row"),
    ("rafdb", add_rafdb("train_00003.jpg"), TXT + ": line 9: expected '<image name> <label>'", "bad row"),
    ("rafdb", add_rafdb("train_00001.jpg 0"), TXT + ": line 9: label '0' is not an integer 1..7", "bad label"),
    ("rafdb", add_rafdb("train_00001.jpg 8"), TXT + ": line 9: label '8' is not an integer 1..7", "bad label"),
    ("rafdb", add_rafdb("train_00001.jpg happy"), TXT + ": line 9: label 'happy' is not", "bad value"),
    ("rafdb", add_rafdb("val_00001.jpg 1", lambda r: write_image(r / "Image/original/val_00001.jpg")),
     TXT + ": line 9: image name 'val_00001.jpg' does not start with", "bad value"),
    ("rafdb", add_rafdb("train_00099.jpg 1"), TXT + ": line 9: no image for 'train_00099.jpg': neither "
     "{root}/Image/aligned/train_00099_aligned.jpg nor {root}/Image/original/train_00099.jpg exists", "missing image"),
    ("rafdb", add_rafdb("train_00003.jpg 1", lambda r: corrupt(r / "Image/aligned/train_00003_aligned.jpg")),
     "{root}/Image/aligned/train_00003_aligned.jpg: cannot read image", "unreadable image"),
    ("rafdb", add_rafdb("train_00001.jpg 1"), TXT + ": line 9: 'Image/aligned/train_00001_aligned.jpg' is listed twice",
     "duplicate"),
    ("reference", lambda r: (make_reference(r), write_lines(r / "0" / "notes.txt", ["hi"])),
     "{root}/0/notes.txt: not a .png/.jpg/.jpeg image", "unexpected file"),
    ("reference", lambda r: (make_reference(r), (r / "3" / "sub").mkdir()),
     "{root}/3/sub: not a .png/.jpg/.jpeg image", "unexpected file"),
    ("reference", lambda r: (make_reference(r), write_lines(r / "README.md", ["hi"])),
     "{root}/README.md: file outside a class folder", "unexpected file"),
    ("reference", lambda r: (make_reference(r), corrupt(r / "3" / "bad.png")),
     "{root}/3/bad.png: cannot read image", "unreadable image"),
    ("folders", lambda r: (make_folders(r), truncated_jpeg(r / "happy" / "cut.jpg")),
     "{root}/happy/cut.jpg: cannot read image", "unreadable image"),
]
GOOD_COUNT = {"affectnet": 8, "fer2013": 11, "rafdb": 7, "reference": 4, "folders": 16}


@pytest.mark.parametrize("fmt, make, expected, reason", ROW_LEVEL,
                         ids=[f"{case[0]}-{case[3]}-{i}" for i, case in enumerate(ROW_LEVEL)])
def test_row_and_file_level_bad_input_raises_or_is_skipped(tmp_path, fmt, make, expected, reason):
    make(tmp_path)
    with pytest.raises(InputError) as info:
        load_dataset(fmt, tmp_path, size=4)
    assert expected.format(root=tmp_path) in str(info.value)
    ds = load_dataset(fmt, tmp_path, size=4, skip_bad=True)
    assert ds.skipped.get(reason) == 1
    assert sum(ds.skipped.values()) == 1 + (4 if fmt == "affectnet" else 0)
    assert len(ds.names) == GOOD_COUNT[fmt]


STRUCTURAL = [
    ("affectnet", lambda r: r.mkdir(), "{root}/training.csv: annotation file not found"),
    ("fer2013", lambda r: r.mkdir(), "{root}/fer2013.csv: annotation file not found"),
    ("rafdb", lambda r: r.mkdir(), "{root}/EmoLabel/list_patition_label.txt: annotation file not found"),
    ("affectnet", lambda r: write_lines(r / "training.csv", ["subDirectory_filePath,face_x,valence", "a.jpg,1,0"]),
     "{root}/training.csv: column 'expression': required column is missing (found: subDirectory_filePath"),
    ("affectnet", lambda r: write_lines(r / "training.csv", ["path,expression", "a.jpg,1"]),
     "{root}/training.csv: column 'subDirectory_filePath': required column is missing"),
    ("fer2013", lambda r: write_lines(r / "fer2013.csv", ["emotion,Usage", "1,Training"]),
     "{root}/fer2013.csv: column 'pixels': required column is missing"),
    ("fer2013", lambda r: (r.mkdir(), (r / "fer2013.csv").write_text("")),
     "{root}/fer2013.csv: column 'emotion': required column is missing (found: no header)"),
    ("reference", lambda r: (make_reference(r), (r / "8").mkdir()),
     "{root}/8: folder name '8' is not a class of this format (accepted names: 0, 1, 2, 3, 4, 5, 6, 7)"),
    ("reference", lambda r: (make_reference(r), (r / "happy").mkdir()), "{root}/happy: folder name 'happy'"),
    ("folders", lambda r: (make_folders(r), (r / "joyful").mkdir()),
     "{root}/joyful: folder name 'joyful' is not a class of this format (accepted names: afraid, anger, angry,"),
    ("reference", lambda r: r.mkdir(), "{root}: no images to load"),
    ("folders", lambda r: (r / "happy").mkdir(parents=True), "{root}: no images to load"),
    ("fer2013", lambda r: write_lines(r / "fer2013.csv", ["emotion,pixels,Usage"]), "{root}/fer2013.csv: no images"),
    ("affectnet", lambda r: write_lines(r / "training.csv", [AFFECTNET_HEADER, affectnet_row("a.jpg", 10),
                                                              affectnet_row("b.jpg", 8), affectnet_row("c.jpg", 8)]),
     "{root}/training.csv: no images to load; skipped 1 non-face, 2 none"),
    ("rafdb", lambda r: write_lines(r / "EmoLabel" / "list_patition_label.txt", ["", "  "]),
     "{root}/EmoLabel/list_patition_label.txt: no images to load"),
]


@pytest.mark.parametrize("fmt, make, expected", STRUCTURAL,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(STRUCTURAL)])
def test_structural_problems_raise_even_when_skipping(tmp_path, fmt, make, expected):
    root = tmp_path / "data"
    make(root)
    for skip_bad in (False, True):
        with pytest.raises(InputError) as info:
            load_dataset(fmt, root, size=4, skip_bad=skip_bad)
        assert expected.format(root=root) in str(info.value)


def test_all_rows_skipped_is_still_an_error(tmp_path):
    write_lines(tmp_path / "training.csv", [AFFECTNET_HEADER, affectnet_row("a.jpg", 12), affectnet_row("b.jpg", 9),
                                            affectnet_row("c.jpg", 3)])
    with pytest.raises(InputError, match="row 1: expression 12 is outside 0..10"):
        load_dataset("affectnet", tmp_path)
    with pytest.raises(InputError) as info:
        load_dataset("affectnet", tmp_path, skip_bad=True)
    expected = f"{tmp_path}/training.csv: no images to load; skipped 1 bad label, 1 missing image, 1 uncertain"
    assert str(info.value) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_root(tmp_path, fmt):
    with pytest.raises(InputError) as info:
        load_dataset(fmt, tmp_path / "nope", skip_bad=True)
    assert str(info.value) == f"{tmp_path / 'nope'}: dataset folder not found"


def test_bad_arguments_raise_value_error(tmp_path):
    make_reference(tmp_path)
    with pytest.raises(ValueError, match="reference, affectnet, fer2013, rafdb, folders"):
        load_dataset("ckplus", tmp_path)
    with pytest.raises(ValueError, match="takes no annotations"):
        load_dataset("reference", tmp_path, annotations=tmp_path / "x.csv")
    with pytest.raises(ValueError, match="channels 1 or 3"):
        load_dataset("reference", tmp_path, channels=2)
    with pytest.raises(ValueError, match="positive int"):
        load_dataset("reference", tmp_path, size=0)
