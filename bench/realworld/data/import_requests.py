"""Workload: `python3 -c "import requests"` as a file (`lazyexec run` takes a
script, not -c; every mode runs this same file)."""
import requests  # noqa: F401
