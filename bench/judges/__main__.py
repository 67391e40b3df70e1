"""``python -m bench.judges``."""

from .cli import main

raise SystemExit(main())
