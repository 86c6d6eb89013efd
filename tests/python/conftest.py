import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_cli(tmp_path):
    """Runs `python -m lazyexec ...` in a clean working directory."""

    def run(*args, cwd=None, env=None, input=None):
        e = dict(os.environ)
        e.pop("LAZYEXEC_CONFIG", None)
        e.update(env or {})
        return subprocess.run([sys.executable, "-m", "lazyexec", *map(str, args)], cwd=cwd or tmp_path,
                              env=e, capture_output=True, text=True, input=input, timeout=300)

    return run
