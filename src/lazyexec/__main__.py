"""`python -m lazyexec ...` is the `lazyexec` command."""

import sys

from lazyexec.cli.main import main

sys.exit(main())
