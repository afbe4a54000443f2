"""Every command's --help explains itself: examples, and a help text for every option."""

from __future__ import annotations

import argparse

import pytest

from edgeknn.cli import build_parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(command line, parser) for the top level and every command and sub-command under it."""
    found = []
    pending = [("edgeknn", build_parser())]
    while pending:
        name, parser = pending.pop()
        found.append((name, parser))
        pending += [(f"{name} {sub}", p) for sub, p in _subcommands(parser).items()]
    return sorted(found, key=lambda item: item[0])


PARSERS = _all_parsers()
LEAVES = [(name, p) for name, p in PARSERS if not _subcommands(p)]


def test_the_walk_reaches_nested_commands():
    names = {name for name, _ in LEAVES}
    assert {"edgeknn store reembed", "edgeknn bench pipeline", "edgeknn config check",
            "edgeknn models fetch", "edgeknn detect", "edgeknn eval-detector"} <= names


@pytest.mark.parametrize(("name", "parser"), PARSERS, ids=[name for name, _ in PARSERS])
def test_help_shows_examples(name, parser):
    text = parser.format_help()
    assert "\nexamples:\n" in text, f"`{name} --help` shows no examples (give it an epilog)"
    # Raw epilogs: the example lines must reach the reader as written, not re-wrapped.
    assert issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter), name
    assert f"\n  {name}" in text.split("\nexamples:\n", 1)[1], f"`{name}` examples do not run `{name}`"


@pytest.mark.parametrize(("name", "parser"), LEAVES, ids=[name for name, _ in LEAVES])
def test_every_option_has_a_help_text(name, parser):
    undocumented = [
        "/".join(a.option_strings) for a in parser._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction)
        and a.help != argparse.SUPPRESS and not (a.help or "").strip()
    ]
    assert not undocumented, f"`{name}` options without a help text: {undocumented}"
