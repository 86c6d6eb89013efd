"""The `lazyexec` command: thin wrappers over the analyze (and later runtime) stages."""
