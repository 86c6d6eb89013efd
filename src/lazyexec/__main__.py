"""`python -m lazyexec ...` is the `lazyexec` command."""

import sys

from lazyexec.cli import command

sys.exit(command(sys.argv[1:]))
