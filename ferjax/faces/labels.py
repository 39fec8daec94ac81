"""AffectNet's eight expression classes, numbered as AffectNet numbers them."""

NAMES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
NUM_CLASSES = len(NAMES)


def check_label(value: int) -> int:
    """Return ``value`` if it is a class index 0..7, else raise ValueError."""
    if not 0 <= int(value) < NUM_CLASSES:
        raise ValueError(f"label {value} is outside 0..{NUM_CLASSES - 1}")
    return int(value)
