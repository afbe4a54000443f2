"""What a class label may be: one rule for folders, buttons, MQTT and the store."""

from __future__ import annotations

import unicodedata

from edgeknn.errors import LabelError

MAX_LABEL_LENGTH = 64
# '/', '+' and '#' are MQTT topic separators and wildcards; labels travel in
# topics (Home Assistant discovery) so they may not contain them.
FORBIDDEN = frozenset("/+#")
# The same rule as a regular expression, for forms that check a label before
# sending it (Home Assistant's "Teach new class" text entity).  It is written
# to mean the same in Python and in a browser's pattern attribute (v flag:
# '/' escaped); it knows only the ASCII and C1 control characters, so
# validate_label stays the rule and this a first check.
_ANY = r"[^\/+#\x00-\x1f\x7f-\x9f]"
_EDGE = r"[^\s\/+#\x00-\x1f\x7f-\x9f]"
LABEL_PATTERN = rf"^(?=.{{1,{MAX_LABEL_LENGTH}}}$){_EDGE}(?:{_ANY}*{_EDGE})?$"


def validate_label(label: object, what: str = "label") -> str:
    """Return the label unchanged if acceptable, else raise LabelError naming the problem."""
    if not isinstance(label, str):
        raise LabelError(f"{what} must be a string, got {type(label).__name__}")
    if not label or not label.strip():
        raise LabelError(f"{what} is empty")
    if len(label) > MAX_LABEL_LENGTH:
        raise LabelError(f"{what} {label[:20]!r}... is {len(label)} characters; at most {MAX_LABEL_LENGTH}")
    if label != label.strip():
        raise LabelError(f"{what} {label!r} starts or ends with white space")
    for ch in label:
        if unicodedata.category(ch).startswith("C"):
            raise LabelError(f"{what} {label!r} contains a control character (U+{ord(ch):04X})")
        if ch in FORBIDDEN:
            raise LabelError(f"{what} {label!r} contains {ch!r}; '/', '+' and '#' are not allowed")
    return label
