"""Fault injection: kill -9 during mixed commands, and what must survive it.

:func:`kill_rounds` starts the daemon, sends seeded mixed commands (adds from
uploaded images, removes by id, renames to a fresh name), kills it with
SIGKILL at a random moment, and checks the store after every round with
:class:`Ledger`:

* every acknowledged add is in the store, unless a remove for it was sent;
* no acknowledged remove is undone;
* every rename was all or nothing (the examples that had the old name when it
  was sent still share one name);
* ``PRAGMA integrity_check`` says ok.

`edgeknn bench faults` runs many rounds; the test suite runs 20.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from edgeknn.tools.harness import Commander, DaemonProcess

LABELS = ("cat", "dog", "owl")


@dataclass
class Ledger:
    """What the owner was told, to check the store against."""

    examples: dict[int, str] = field(default_factory=dict)  # acknowledged adds: id -> label
    removing: set[int] = field(default_factory=set)  # ids a remove was sent for
    removed: set[int] = field(default_factory=set)  # ids an acknowledged remove took
    renames: list[tuple[str, str, frozenset[int]]] = field(default_factory=list)
    acknowledged = 0

    def added(self, reply: dict, label: str) -> None:
        if reply.get("ok"):
            self.acknowledged += 1
            for example_id in reply.get("example_ids", []):
                self.examples[example_id] = label

    def resync(self, store: Path) -> None:
        """Take the labels from the store after a round: a rename that was carried out
        but never answered moved examples the ledger still knows by the old name."""
        with closing(sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            labels = dict(conn.execute("SELECT id, label FROM examples").fetchall())
        for example_id in self.examples:
            if example_id in labels:
                self.examples[example_id] = labels[example_id]

    def check(self, store: Path) -> list[str]:
        """Every way the store disagrees with what was acknowledged (empty: none)."""
        problems = []
        with closing(sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            if (result := conn.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
                problems.append(f"integrity_check: {result}")
            labels = dict(conn.execute("SELECT id, label FROM examples").fetchall())
        for example_id, label in self.examples.items():
            if example_id not in labels and example_id not in self.removing:
                problems.append(f"acknowledged example {example_id} ({label}) is lost")
        for example_id in self.removed & set(labels):
            problems.append(f"example {example_id} is back after an acknowledged remove")
        for old, new, members in self.renames:
            names = {labels[i] for i in members if i in labels}
            if len(names) > 1:  # some moved, some did not
                problems.append(f"rename {old} -> {new} half done: {sorted(names)}")
        return problems


@dataclass(frozen=True)
class Sent:
    key: str  # correlation id
    verb: str
    label: str = ""  # add: the label; rename: the old name
    new: str = ""  # rename: the new name
    example_id: int = -1  # remove


@dataclass
class Round:
    commands: int
    acknowledged: int
    problems: list[str]


def mixed_commands(commander: Commander, ledger: Ledger, rng: random.Random, images: list[str],
                   count: int, names: Callable[[], str]) -> list[Sent]:
    """Send ``count`` seeded commands without waiting for replies."""
    sent: list[Sent] = []
    for _ in range(count):
        roll = rng.random()
        known = [i for i in ledger.examples if i not in ledger.removing]
        if roll < 0.6 or not known:
            label = rng.choice(LABELS)
            key = commander.send("add", {"label": label, "image": rng.choice(images)}, wait=False)
            sent.append(Sent(key, "add", label=label))
        elif roll < 0.85:
            victim = rng.choice(known)
            ledger.removing.add(victim)
            key = commander.send("remove", {"example_id": victim}, wait=False)
            sent.append(Sent(key, "remove", example_id=victim))
        else:
            old = rng.choice(sorted({ledger.examples[i] for i in known}))
            new = names()
            members = frozenset(i for i in known if ledger.examples[i] == old)
            ledger.renames.append((old, new, members))
            key = commander.send("rename", {"from": old, "to": new}, wait=False)
            sent.append(Sent(key, "rename", label=old, new=new))
    return sent


def settle(commander: Commander, ledger: Ledger, sent: list[Sent]) -> None:
    """Record every reply that arrived: only those commands count as acknowledged."""
    for command in sent:
        reply = commander.reply(command.key)
        if reply is None or not reply.get("ok"):
            continue
        if command.verb == "add":
            ledger.added(reply, command.label)
            continue
        ledger.acknowledged += 1
        if command.verb == "remove":
            ledger.removed.add(command.example_id)
        else:
            for example_id, label in list(ledger.examples.items()):
                if label == command.label:
                    ledger.examples[example_id] = command.new


def kill_rounds(daemon: DaemonProcess, commander: Commander, images: list[str], *, rounds: int,
                seed: int, per_round: int = 12, report: Callable[[int, Round], None] | None = None
                ) -> tuple[Ledger, list[Round]]:
    """``rounds`` of: start, send mixed commands, kill -9 at a random moment, check the store."""
    rng = random.Random(seed)
    ledger = Ledger()
    fresh = iter(f"renamed{n}" for n in range(1_000_000))
    results = []
    for number in range(rounds):
        commander.forget_status()
        daemon.start()
        commander.wait_online()
        sent = mixed_commands(commander, ledger, rng, images, per_round, lambda: next(fresh))
        commander.wait([sent[0].key], timeout=30)  # the daemon is at work (however slow the machine)
        time.sleep(rng.uniform(0.0, 0.5))  # then kill it at a random point of the burst
        daemon.kill()
        time.sleep(0.1)  # replies already on the wire arrive
        settle(commander, ledger, sent)
        result = Round(len(sent), sum(commander.reply(c.key) is not None for c in sent),
                       ledger.check(daemon.store))
        results.append(result)
        ledger.resync(daemon.store)
        if report is not None:
            report(number, result)
    return ledger, results
