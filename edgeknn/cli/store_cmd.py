"""`edgeknn store info|export|import|remove|clear|rename|reembed`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeknn.cli.common import (
    Progress,
    add_embedder_args,
    add_store_arg,
    embedder_from_args,
    open_store,
)
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
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store", help="inspect and manage the example store",
        description="Inspect, back up and edit the store of taught examples.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    v = verbs.add_parser("info", help="classes, counts, embedder fingerprint, sizes")
    v.add_argument("--json", action="store_true")
    add_store_arg(v)
    v.set_defaults(func=info)

    v = verbs.add_parser("export", help="write the store to one portable file")
    v.add_argument("file", type=Path)
    add_store_arg(v)
    v.set_defaults(func=export)

    v = verbs.add_parser("import", help="add the examples of an exported file to the store")
    v.add_argument("file", type=Path)
    v.add_argument("--replace", action="store_true", help="clear the store first")
    add_store_arg(v)
    v.set_defaults(func=import_)

    v = verbs.add_parser("remove", help="remove one example by id")
    v.add_argument("--example", type=int, required=True, metavar="ID")
    add_store_arg(v)
    v.set_defaults(func=remove)

    v = verbs.add_parser("clear", help="remove a class, or everything")
    group = v.add_mutually_exclusive_group(required=True)
    group.add_argument("--label", help="remove every example of this class")
    group.add_argument("--all", action="store_true", help="remove every example")
    v.add_argument("--yes", action="store_true", help="confirm --all")
    add_store_arg(v)
    v.set_defaults(func=clear)

    v = verbs.add_parser("rename", help="rename a class (merges into an existing one)")
    v.add_argument("old")
    v.add_argument("new")
    add_store_arg(v)
    v.set_defaults(func=rename)

    v = verbs.add_parser("reembed", help="re-embed every example from its thumbnail with another model")
    add_store_arg(v)
    add_embedder_args(v)
    v.set_defaults(func=reembed)


def _existing(args: argparse.Namespace) -> Store:
    return open_store(args, create=False)


def info(args: argparse.Namespace) -> int:
    with _existing(args) as store:
        i = store.info()
    if args.json:
        print(json.dumps({
            "path": str(i.path), "fingerprint": i.fingerprint, "dim": i.dim, "dtype": i.dtype,
            "count": i.count, "classes": i.classes, "file_bytes": i.file_bytes,
            "matrix_bytes": i.matrix_bytes,
        }))
        return 0
    print(f"store:       {i.path}")
    print(f"embedder:    {i.fingerprint or '(none yet)'}")
    print(f"embeddings:  {i.count} x {i.dim or '-'} {i.dtype} ({i.matrix_bytes / 1e6:.1f} MB in memory)")
    print(f"file:        {i.file_bytes / 1e6:.1f} MB")
    print(f"classes:     {len(i.classes)}")
    for label, n in sorted(i.classes.items()):
        print(f"  {label}: {n}")
    return 0


def export(args: argparse.Namespace) -> int:
    with _existing(args) as store:
        n = store.export(args.file)
    print(f"exported {n} examples to {args.file}")
    return 0


def import_(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise StoreError(f"import file {args.file} does not exist")
    with Store.open(args.file, create=False) as source, open_store(args) as store:
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
    embedder = embedder_from_args(args)
    with _existing(args) as store:
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
