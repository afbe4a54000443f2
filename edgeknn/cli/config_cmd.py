"""Placeholder: this command group is being written."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's parser(s) to the edgeknn command line."""
