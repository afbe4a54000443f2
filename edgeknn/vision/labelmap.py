"""Detector label files: class id -> label name.

Two formats are in common use, and both are read:

* **One label per line.**  Line *n* names class id *n* (``coco_labels.txt``,
  with ``n/a`` on the ids COCO left unused).  If the first line is ``???``
  or ``background``, it stands for the background class, which the
  ``TFLite_Detection_PostProcess`` op never reports: class id *c* is then on
  line *c + 1* (``pets_labels.txt``).
* **``id label`` pairs**, ids possibly with gaps (``0  person``, ``2: car``).
  A file is read this way only if *every* non-blank line starts with an id,
  so a one-per-line file whose labels happen to contain digits is not
  misread.

Label names are kept as written (``n/a`` and ``traffic light`` included):
they are the model's vocabulary, not classes a user teaches, so the teaching
rules of :mod:`edgeknn.labels` do not apply to them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from edgeknn.errors import DetectorError

BACKGROUND_LINES = frozenset({"???", "background"})
_PAIR = re.compile(r"^\s*(\d+)(?:\s*[:,]\s*|\s+)(\S.*?)\s*$")


@dataclass(frozen=True)
class LabelMap:
    """Class ids the detector reports, and their names."""

    names: Mapping[int, str]
    source: str = "labels"
    _by_name: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", MappingProxyType(dict(sorted(self.names.items()))))
        by_name: dict[str, int] = {}
        for class_id, name in self.names.items():
            by_name.setdefault(name, class_id)
        object.__setattr__(self, "_by_name", by_name)

    def name(self, class_id: int) -> str | None:
        """The label of a class id, or None if the file does not name it."""
        return self.names.get(class_id)

    def id_of(self, name: str) -> int | None:
        return self._by_name.get(name)

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self._by_name)

    @property
    def max_id(self) -> int:
        return max(self.names) if self.names else -1

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[int]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


def parse_labels(text: str, source: str = "labels") -> LabelMap:
    """Read a label file's text in either format (see the module docstring)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not any(line.strip() for line in lines):
        raise DetectorError(f"label file {source} is empty")
    content = [line for line in lines if line.strip()]
    pairs = [_PAIR.match(line) for line in content]
    if all(pairs):
        return _from_pairs([m for m in pairs if m], source)
    offset = 1 if lines[0].strip().casefold() in BACKGROUND_LINES else 0
    names: dict[int, str] = {}
    for number, line in enumerate(lines[offset:], start=offset + 1):
        if not line.strip():
            raise DetectorError(
                f"label file {source}: line {number} is blank; in a one-label-per-line "
                "file every line up to the last names a class id (use n/a for unused ids)"
            )
        names[number - 1 - offset] = line.strip()
    return LabelMap(names, source)


def _from_pairs(matches: list[re.Match[str]], source: str) -> LabelMap:
    names: dict[int, str] = {}
    for m in matches:
        class_id, name = int(m.group(1)), m.group(2)
        if class_id in names:
            raise DetectorError(
                f"label file {source}: class id {class_id} is named twice "
                f"({names[class_id]!r} and {name!r})"
            )
        names[class_id] = name
    return LabelMap(names, source)


def read_labels(path: str | Path) -> LabelMap:
    """Read a label file; a missing or undecodable file is a DetectorError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DetectorError(f"label file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectorError(f"label file {path} cannot be read ({exc})") from None
    return parse_labels(text, str(path))
