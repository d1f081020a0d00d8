"""Make the shared test helpers here (``ray_processes``) importable; pytest runs with
``--import-mode=importlib``, which does not put test folders on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ray_processes import ray_tmpdir  # noqa: F401 (a fixture for every test here)
