"""Folder-per-class datasets: ``DIR/<label>/<image>``, checked before any work starts."""

from __future__ import annotations

from pathlib import Path

from edgeknn.errors import DatasetError, LabelError
from edgeknn.images import list_images
from edgeknn.labels import validate_label


def load_dataset(root: str | Path, *, limit_per_class: int | None = None) -> dict[str, list[Path]]:
    """Map each class (sub-folder name) to its image files, sorted by name.

    Raises DatasetError for a missing or empty folder, or a class folder with no
    images; LabelError (naming the folder) for a folder name that is not a valid label.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset {root} is not a folder")
    classes: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = validate_label(folder.name, "class folder name")
        except LabelError as exc:
            raise LabelError(f"{folder}: {exc}") from None
        images = list_images(folder)
        if not images:
            raise DatasetError(f"class folder {folder} has no images (.jpg, .png, .bmp, ...)")
        classes[label] = images[:limit_per_class] if limit_per_class else images
    if not classes:
        loose = list_images(root)
        hint = f" ({len(loose)} images lie directly in it)" if loose else ""
        raise DatasetError(f"dataset {root} has no class sub-folders{hint}; lay it out as {root}/<label>/<image>")
    return classes
