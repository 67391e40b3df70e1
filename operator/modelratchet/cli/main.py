"""Entry point: one argparse subcommand per module.

A command module has ``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit
code``). Register a new command by adding its module to ``COMMANDS``. Modules import their heavy
dependencies inside ``func`` so that ``modelratchet check`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS = [
    "modelratchet.cli.check",
    "modelratchet.cli.crds",
    "modelratchet.cli.run",
    "modelratchet.cli.status",
    "modelratchet.cli.history",
    "modelratchet.cli.gates",
    "modelratchet.cli.report",
    "modelratchet.cli.watch",
    "modelratchet.cli.dashboard",
]


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "modelratchet"
    return "kubectl modelratchet" if name.startswith("kubectl-") else "modelratchet"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Roll ML model checkpoints forward only when they hold up against their baseline.",
    )
    from modelratchet import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (argparse exits 2 on a usage error)."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
