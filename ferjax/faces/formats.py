"""Readers of the real on-disk formats of facial-expression datasets.

One reader per format (AffectNet's annotation CSV, FER2013's pixel CSV,
RAF-DB's label list, class folders); each adds the images it reads to a
:class:`Collector`, which converts them (Pillow, "L" or "RGB", bilinear
resize), keeps names unique and either raises :class:`InputError` at the
first bad row or file, or counts it under its reason (``skip_bad``).
:func:`ferjax.faces.datasets.load_dataset` chooses the reader.
"""

from __future__ import annotations

import csv
import functools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ferjax.faces.labels import NAMES, NUM_CLASSES
from ferjax.plumbing.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ANNOTATION_FILES = {"affectnet": "training.csv", "fer2013": "fer2013.csv",
                    "rafdb": "EmoLabel/list_patition_label.txt"}
AFFECTNET_NOT_EXPRESSIONS = {8: "none", 9: "uncertain", 10: "non-face"}
AFFECTNET_SPLITS = {"training": "train", "validation": "val"}
FER2013_SIDE = 48
FER2013_TO_AFFECTNET = (6, 5, 4, 1, 2, 3, 0)
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
RAFDB_TO_AFFECTNET = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
FOLDER_SYNONYMS = {"neutral": ("neutrality",), "happy": ("happiness", "joy"), "sad": ("sadness",),
                   "surprise": ("surprised",), "fear": ("fearful", "afraid", "scared"),
                   "disgust": ("disgusted",), "anger": ("angry",), "contempt": ("contemptuous",)}
REFERENCE_LABELS = {str(i): i for i in range(NUM_CLASSES)}
FOLDER_LABELS = {w: NAMES.index(n) for n, words in FOLDER_SYNONYMS.items() for w in (n, *words)}


@dataclass
class Dataset:
    """Images with AffectNet labels, a stable name and a split hint per image."""

    images: np.ndarray  # uint8 (N, size, size, channels)
    labels: np.ndarray  # int32 (N,), AffectNet numbering 0..7
    names: list[str]  # path relative to root (posix), or "row <k>" for FER2013
    split: list[str]  # "train" / "val" / "test", "" when the format has none
    skipped: dict[str, int]  # reason -> count of rows or files skipped


def _read_image(source, size: int, channels: int) -> np.ndarray:
    """Read an image file (or take a PIL image); return it converted and resized as uint8 (size, size, channels)."""
    try:
        with Image.open(source) if isinstance(source, Path) else source as image:
            image = image.convert("L" if channels == 1 else "RGB")
            image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).reshape(size, size, channels)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(source, None, f"cannot read image: {err}") from err


def _natural_key(name: str):
    """Sort key comparing runs of digits as numbers, ties broken by the name itself."""
    parts = re.split(r"([0-9]+)", name)
    parts[1::2] = [int(p) for p in parts[1::2]]
    return parts, name


def _int(text: str) -> int | None:
    """Parse a plain decimal integer (surrounding blanks allowed), else None."""
    return int(text) if re.fullmatch(r"\s*[+-]?[0-9]+\s*", text) else None


class Collector:
    """Accumulates the images of one load; raises bad input or counts it."""

    def __init__(self, size: int, channels: int, skip_bad: bool):
        self.size, self.channels, self.skip_bad = size, channels, skip_bad
        self.items: dict[str, tuple] = {}
        self.skipped: Counter[str] = Counter()

    def bad(self, reason: str, path, where, message: str, hint: str | None = None) -> None:
        """Raise ``InputError``, or count ``reason`` when skipping bad input."""
        if not self.skip_bad:
            raise InputError(path, where, message, hint)
        self.skipped[reason] += 1

    def add(self, name: str, label: int, split: str, image, source, where) -> None:
        """Add ``image`` (a file or a PIL image) listed in ``source`` at ``where``."""
        if name in self.items:
            return self.bad("duplicate", source, where, f"{name!r} is listed twice (also at {self.items[name][3]})")
        if isinstance(image, Path) and not image.is_file():
            return self.bad("missing image", source, where, f"image file not found: {image}")
        try:
            array = _read_image(image, self.size, self.channels)
        except InputError as err:
            return self.bad("unreadable image", err.path, err.where, err.message)
        self.items[name] = (label, split, array, where)

    def finish(self, source: Path) -> Dataset:
        """Return the sorted :class:`Dataset`; raise if no image was loaded."""
        if not self.items:
            detail = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            raise InputError(source, None, "no images to load" + (f"; skipped {detail}" if detail else ""))
        names = sorted(self.items, key=_natural_key)
        labels, split, arrays, _ = zip(*(self.items[n] for n in names))
        return Dataset(np.stack(arrays), np.array(labels, dtype=np.int32), names, list(split),
                       dict(sorted(self.skipped.items())))


def _csv_rows(path: Path, required: tuple[str, ...], out: Collector):
    """Yield ``("row <k>", {column: text})`` per data row of a headed CSV; blank lines are not rows."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            for column in required:
                if column not in header:
                    hint = f"found: {', '.join(header) or 'no header'}"
                    raise InputError(path, f"column '{column}'", "required column is missing", hint)
            for k, fields in enumerate(filter(None, reader), 1):
                if len(fields) != len(header):
                    out.bad("bad row", path, f"row {k}", f"has {len(fields)} fields, the header {len(header)}")
                else:
                    yield f"row {k}", dict(zip(header, fields))
    except csv.Error as err:
        raise InputError(path, f"line {reader.line_num}", f"cannot parse CSV: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, None, f"cannot read as UTF-8 text: {err}") from err


def _load_affectnet(root: Path, source: Path, out: Collector) -> None:
    """AffectNet CSV: ``subDirectory_filePath`` (image path relative to root) and ``expression`` 0..10.

    Expressions 0..7 are the eight classes; 8 None, 9 Uncertain and 10 Non-Face
    are skipped as "none", "uncertain", "non-face". Other columns (face box,
    landmarks, valence, arousal) are ignored. Split: "train" for
    ``training.csv``, "val" for ``validation.csv``, else "". Names are
    ``subDirectory_filePath``.
    """
    split = AFFECTNET_SPLITS.get(source.stem.lower(), "")
    for where, row in _csv_rows(source, ("subDirectory_filePath", "expression"), out):
        name, code = row["subDirectory_filePath"].strip(), _int(row["expression"])
        if code is None:
            out.bad("bad value", source, where, f"expression {row['expression']!r} is not an integer")
        elif code in AFFECTNET_NOT_EXPRESSIONS:
            out.skipped[AFFECTNET_NOT_EXPRESSIONS[code]] += 1
        elif not 0 <= code < NUM_CLASSES:
            out.bad("bad label", source, where, f"expression {code} is outside 0..10")
        elif not name:
            out.bad("bad value", source, where, "subDirectory_filePath is empty")
        else:
            out.add(name, code, split, root / name, source, where)


def _load_fer2013(root: Path, source: Path, out: Collector) -> None:
    """FER2013 CSV: ``emotion`` 0..6, ``pixels`` (2304 integers 0..255: 48x48 gray) and ``Usage``.

    Emotions 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral
    become AffectNet 6, 5, 4, 1, 2, 3, 0. Usage Training, PublicTest,
    PrivateTest give split "train", "val", "test" ("" if the column is absent).
    Names are "row <k>", k the 1-based data row.
    """
    for where, row in _csv_rows(source, ("emotion", "pixels"), out):
        emotion = _int(row["emotion"])
        split = FER2013_USAGE.get(row["Usage"].strip()) if "Usage" in row else ""
        try:
            pixels = np.array(row["pixels"].split(), dtype=np.int64)
        except (ValueError, OverflowError):
            pixels = None
        if emotion is None:
            out.bad("bad value", source, where, f"emotion {row['emotion']!r} is not an integer")
        elif not 0 <= emotion <= 6:
            out.bad("bad label", source, where, f"emotion {emotion} is outside 0..6")
        elif split is None:
            out.bad("bad value", source, where, f"Usage {row['Usage']!r} is not one of {', '.join(FER2013_USAGE)}")
        elif pixels is None or pixels.size != FER2013_SIDE**2:
            count = "non-integer" if pixels is None else pixels.size
            out.bad("bad value", source, where, f"pixels has {count} values, expected {FER2013_SIDE**2} integers")
        elif pixels.min() < 0 or pixels.max() > 255:
            out.bad("bad value", source, where, "pixels has a value outside 0..255")
        else:
            image = Image.fromarray(pixels.astype(np.uint8).reshape(FER2013_SIDE, FER2013_SIDE))
            out.add(where, FER2013_TO_AFFECTNET[emotion], split, image, source, where)


def _load_rafdb(root: Path, source: Path, out: Collector) -> None:
    """RAF-DB basic ``EmoLabel/list_patition_label.txt``: lines ``<image name> <label>``, label 1..7.

    Labels 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger,
    7 Neutral become AffectNet 3, 4, 5, 1, 2, 6, 0. The image read is
    ``Image/aligned/<stem>_aligned.jpg`` if present, else
    ``Image/original/<name>``; its path relative to root is the name. Split
    is the name's prefix, "train" or "test". Blank lines are ignored.
    """
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(source, None, f"cannot read as UTF-8 text: {err}") from err
    for n, line in enumerate(lines, 1):
        fields, where = line.split(), f"line {n}"
        if len(fields) != 2:
            if fields:
                out.bad("bad row", source, where, f"expected '<image name> <label>', got {line.strip()!r}")
            continue
        name, label = fields[0], _int(fields[1])
        aligned = root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"
        image = aligned if aligned.is_file() else root / "Image" / "original" / name
        if label not in RAFDB_TO_AFFECTNET:
            reason = "bad value" if label is None else "bad label"
            out.bad(reason, source, where, f"label {fields[1]!r} is not an integer 1..7")
        elif not name.startswith(("train_", "test_")):
            out.bad("bad value", source, where, f"image name {name!r} does not start with 'train_' or 'test_'")
        elif not image.is_file():
            out.bad("missing image", source, where, f"no image for {name!r}: neither {aligned} nor {image} exists")
        else:
            split = name.split("_", 1)[0]
            out.add(image.relative_to(root).as_posix(), RAFDB_TO_AFFECTNET[label], split, image, source, where)


def _load_class_folders(root: Path, source: Path, out: Collector, labels: dict[str, int]) -> None:
    """Images in class folders ``root/<folder>/<name>.(png|jpg|jpeg)``, labelled by ``labels[folder.lower()]``.

    A folder name not in ``labels`` is an error naming the folder. Hidden
    entries (".name") are ignored; a file outside a class folder or one that
    is not such an image is an "unexpected file". Names are paths relative to
    root; there is no split hint.
    """
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            continue
        if not folder.is_dir():
            out.bad("unexpected file", folder, None, "file outside a class folder", "images go in <root>/<class>/")
            continue
        if folder.name.lower() not in labels:
            hint = f"accepted names: {', '.join(sorted(labels))}"
            raise InputError(folder, None, f"folder name {folder.name!r} is not a class of this format", hint)
        for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                out.add(path.relative_to(root).as_posix(), labels[folder.name.lower()], "", path, path, None)
            else:
                out.bad("unexpected file", path, None, "not a .png/.jpg/.jpeg image")


LOADERS = {
    "reference": functools.partial(_load_class_folders, labels=REFERENCE_LABELS),
    "affectnet": _load_affectnet,
    "fer2013": _load_fer2013,
    "rafdb": _load_rafdb,
    "folders": functools.partial(_load_class_folders, labels=FOLDER_LABELS),
}
