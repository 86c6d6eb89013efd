"""lazyexec's command line (`lazyexec`, `python -m lazyexec`)."""


def command(argv: list[str]) -> int:
    """The `lazyexec` command. `run` is a start-up path: it goes straight to
    cli/run.py, without the argument parser's module (cli/main.py)."""
    if argv[:1] == ["run"]:
        from lazyexec.cli.run import run

        return run(argv[1:])
    from lazyexec.cli.main import main

    return main(argv)
