"""The digits example lives in a folder that is not a package: make its modules importable."""

from __future__ import annotations

import sys

from e2e.harness.model_servers import EXAMPLE_DIR

if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))
