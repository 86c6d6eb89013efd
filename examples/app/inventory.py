"""inventory: a small command-line application used by `make demo`.

It imports far more than any one command uses, like most real CLIs: the
`report` command needs json and statistics, `export` needs csv, `check` needs
re and datetime. Its modules opt in with `__lazy_module__ = True`.
"""

__lazy_module__ = True

import argparse
import sys

from inventory_app import catalog, formats, rules


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inventory")
    p.add_argument("command", choices=["report", "export", "check"])
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    items = catalog.load_items()
    if args.command == "report":
        print(formats.as_json(catalog.summary(items)))
    elif args.command == "export":
        sys.stdout.write(formats.as_csv(items))
    else:
        problems = rules.check_all(items)
        print(f"{len(problems)} problem(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
