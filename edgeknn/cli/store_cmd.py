"""`edgeknn store info|export|import|remove|clear|rename|reembed`."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

from edgeknn.cli.common import (
    Progress,
    add_embedder_args,
    add_store_arg,
    open_embedder,
    open_store,
)
from edgeknn.cli.flags import load_config
from edgeknn.errors import EdgeKnnError, StoreError
from edgeknn.images import decode_image
from edgeknn.store import Store

EPILOG = """examples:
  edgeknn store info
  edgeknn store export kitchen-backup.edgeknn
  edgeknn store import kitchen-backup.edgeknn --store other.db
  edgeknn store remove --example 42
  edgeknn store clear --label mug
  edgeknn store clear --all --yes
  edgeknn store rename mug cup
  edgeknn store reembed --model mobilenet_v2     # after changing the embedder

Every verb takes --store FILE (default: $EDGEKNN_STORE, else store.path of
the config file -- --config FILE, or /etc/edgeknn/config.toml if readable --
else ~/.local/share/edgeknn/store.db); see `edgeknn store VERB --help`.
"""

# One (help, description, epilog) per verb: `edgeknn store VERB --help` shows its own examples.
VERBS = {
    "info": (
        "classes, counts, embedder fingerprint, sizes",
        "Print what the store holds: its classes and their counts, the embedder it is bound "
        "to, and its size on disk and in memory.",
        """examples:
  edgeknn store info
  edgeknn store info --json | jq .classes
  edgeknn store info --store /var/lib/edgeknn/store.db
""",
    ),
    "export": (
        "write the store to one portable file",
        "Copy every example (embedding, thumbnail, label) into FILE, a store file of its own "
        "that `edgeknn store import` reads on another machine.",
        """examples:
  edgeknn store export kitchen-backup.edgeknn
  edgeknn store export /media/usb/backup.edgeknn --store /var/lib/edgeknn/store.db
""",
    ),
    "import": (
        "add the examples of an exported file to the store",
        "Add every example of FILE (written by `edgeknn store export`) to the store.  Both must "
        "be bound to the same embedder; re-embed one of them first if not.",
        """examples:
  edgeknn store import kitchen-backup.edgeknn
  edgeknn store import kitchen-backup.edgeknn --replace --store other.db
""",
    ),
    "remove": (
        "remove one example by id",
        "Remove one example by its id: the example_id of a prediction's neighbours, or one of "
        "the example_ids an MQTT add command replies with.",
        """examples:
  edgeknn store remove --example 42
  edgeknn store remove --example 7 --store kitchen.db
""",
    ),
    "clear": (
        "remove a class, or everything",
        "Remove every example of one class, or (with --all --yes) every example.",
        """examples:
  edgeknn store clear --label mug
  edgeknn store clear --all --yes
""",
    ),
    "rename": (
        "rename a class (merges into an existing one)",
        "Give the examples of class OLD the label NEW; if NEW exists already the two merge.",
        """examples:
  edgeknn store rename mug cup
  edgeknn store rename "coffee mug" mug --store kitchen.db
""",
    ),
    "reembed": (
        "re-embed every example from its thumbnail with another model",
        "Embed every example again from its stored thumbnail, and bind the store to the new "
        "embedder.  Needed after changing the embedder: a store answers only to the embedder "
        "it is bound to.",
        """examples:
  edgeknn store reembed --model mobilenet_v2
  edgeknn store reembed --model my_mobilenet.tflite --embedding-tensor MobilenetV2/Logits/AvgPool
  edgeknn store reembed --model mobilenet_v2 --accelerator cpu --store kitchen.db
""",
    ),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store", help="inspect and manage the example store",
        description="Inspect, back up and edit the store of taught examples.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str) -> argparse.ArgumentParser:
        help_, description, epilog = VERBS[name]
        return verbs.add_parser(name, help=help_, description=textwrap.fill(description, 79),
                                epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)

    v = verb("info")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    add_store_arg(v)
    v.set_defaults(func=info)

    v = verb("export")
    v.add_argument("file", type=Path, metavar="FILE", help="the file to write (must not exist yet)")
    add_store_arg(v)
    v.set_defaults(func=export)

    v = verb("import")
    v.add_argument("file", type=Path, metavar="FILE", help="a file written by `edgeknn store export`")
    v.add_argument("--replace", action="store_true", help="clear the store first")
    add_store_arg(v)
    v.set_defaults(func=import_)

    v = verb("remove")
    v.add_argument("--example", type=int, required=True, metavar="ID",
                   help="the example's id (example_id in predictions and MQTT replies)")
    add_store_arg(v)
    v.set_defaults(func=remove)

    v = verb("clear")
    group = v.add_mutually_exclusive_group(required=True)
    group.add_argument("--label", help="remove every example of this class")
    group.add_argument("--all", action="store_true", help="remove every example")
    v.add_argument("--yes", action="store_true", help="confirm --all")
    add_store_arg(v)
    v.set_defaults(func=clear)

    v = verb("rename")
    v.add_argument("old", metavar="OLD", help="the class to rename")
    v.add_argument("new", metavar="NEW", help="its new name (an existing class merges)")
    add_store_arg(v)
    v.set_defaults(func=rename)

    v = verb("reembed")
    add_store_arg(v)
    add_embedder_args(v)
    v.set_defaults(func=reembed)


def _existing(args: argparse.Namespace, *, readonly: bool = False) -> Store:
    return open_store(load_config(args), create=False, readonly=readonly)


def info(args: argparse.Namespace) -> int:
    with _existing(args, readonly=True) as store:
        i = store.info()
        views = store.view_count()
    if args.json:
        print(json.dumps({
            "path": str(i.path), "fingerprint": i.fingerprint, "dim": i.dim, "dtype": i.dtype,
            "count": i.count, "classes": i.classes, "file_bytes": i.file_bytes,
            "matrix_bytes": i.matrix_bytes, "mirror_views": views,
        }))
        return 0
    print(f"store:       {i.path}")
    print(f"embedder:    {i.fingerprint or '(none yet)'}")
    print(f"embeddings:  {i.count} x {i.dim or '-'} {i.dtype} ({i.matrix_bytes / 1e6:.1f} MB in memory)")
    print(f"file:        {i.file_bytes / 1e6:.1f} MB")
    print(f"views:       {views} mirrored copies and corner crops (extra rows for the few-shot head; "
          "classifier.views)")
    print(f"classes:     {len(i.classes)}")
    for label, n in sorted(i.classes.items()):
        print(f"  {label}: {n}")
    return 0


def export(args: argparse.Namespace) -> int:
    with _existing(args, readonly=True) as store:
        n = store.export(args.file)
    print(f"exported {n} examples to {args.file}")
    return 0


def import_(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise StoreError(f"import file {args.file} does not exist")
    config = load_config(args)
    with Store.open(args.file, readonly=True) as source, open_store(config) as store:
        n = store.import_from(source, replace=args.replace)
        total = len(store)
    print(f"imported {n} examples from {args.file}; the store now holds {total}")
    return 0


def remove(args: argparse.Namespace) -> int:
    with _existing(args) as store:
        label = store.remove(args.example)
    print(f"removed example {args.example} ({label})")
    return 0


def clear(args: argparse.Namespace) -> int:
    with _existing(args) as store:
        if args.all:
            if not args.yes:
                raise EdgeKnnError(f"clearing all {len(store)} examples needs --yes")
            n = store.clear()
            print(f"removed all {n} examples")
        else:
            n = store.clear_class(args.label)
            print(f"removed {n} examples of {args.label}")
    return 0


def rename(args: argparse.Namespace) -> int:
    with _existing(args) as store:
        n = store.rename(args.old, args.new)
    print(f"renamed {args.old} to {args.new} ({n} examples)")
    return 0


def reembed(args: argparse.Namespace) -> int:
    config = load_config(args)
    embedder = open_embedder(config)
    with open_store(config, create=False) as store:
        if store.fingerprint == embedder.info.fingerprint:
            print(f"store {store.path} is already embedded with {embedder.info.fingerprint}")
            return 0
        progress = Progress("reembed", len(store))
        n = store.reembed(
            lambda thumb: embedder.embed(decode_image(thumb, "thumbnail")),
            embedder.info.fingerprint, embedder.info.dim, lambda done, total: progress.update(done),
        )
    print(f"re-embedded {n} examples with {embedder.info.fingerprint}")
    return 0
