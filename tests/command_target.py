"""A CommandTarget for the MQTT client's tests: the real command handling runs on top of it."""

from __future__ import annotations

import threading

from conftest import TIMEOUT

from edgeknn.errors import UnknownLabel


class Store:
    """Knows the class "cat" (2 examples) and records every add it carries out."""

    def __init__(self) -> None:
        self.counts = {"cat": 2}
        self.committed: list[str] = []  # the label of every add carried out
        self.entered = threading.Event()  # an add has begun
        self.release: threading.Event | None = None  # set to make adds wait for it
        self.lock = threading.Lock()

    def add(self, label, count, image, target):
        self.entered.set()
        if self.release is not None:
            self.release.wait(TIMEOUT)
        with self.lock:
            self.counts[label] = self.counts.get(label, 0) + count
            self.committed.append(label)
            return {"counts": dict(self.counts)}

    def remove_label(self, label):
        with self.lock:
            if label not in self.counts:
                raise UnknownLabel(f"no class {label!r}")
            return {"removed": self.counts.pop(label)}

    def remove_example(self, example_id):
        return {}

    def clear(self):
        with self.lock:
            self.counts.clear()
        return {}

    def rename(self, old, new):
        return {}

    def snapshot(self):
        return {"bytes": 0}
