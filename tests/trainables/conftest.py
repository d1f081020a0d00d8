"""Make ``record_checks`` (comparing epoch records within a tolerance) importable by the tests
here; pytest runs with ``--import-mode=importlib``, which does not put test folders on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
