"""``modelratchet crds [--check] [DIR]``: write (or verify) the CRD manifests generated from the models."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "crds",
        help="write the CRD manifests generated from the API models",
        description="Write the CRD manifests generated from the API models (default directory: crds/).",
    )
    parser.add_argument("output", nargs="?", default=None, metavar="DIR", help="directory (default: crds/)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk are stale")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelratchet.api.crds import main

    argv = ["--check"] if args.check else []
    if args.output is not None:
        argv.append(args.output)
    return main(argv)
