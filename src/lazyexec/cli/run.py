"""`lazyexec run (script.py | -m module | console-script) [args]`: start a
program with lazy loading active. The main script itself runs as usual; the
modules it imports load lazily as policy selects.

The program gets the `__main__` the interpreter itself would have given it
(STYLE "Be the interpreter, exactly"): for `python script.py`, a fresh
`__main__` module with `__file__` (absolute, not normalised), `__cached__`
None, a `SourceFileLoader`, `__spec__` and `__package__` None, the builtins
module as `__builtins__`, `sys.argv[0]` as given and `sys.path[0]` the
script's real directory; `__file__` and `__cached__` are removed again when
the script ends, as `PyRun_SimpleFile` does. For `python -m module`, the
interpreter's own `runpy._run_module_as_main` on a fresh `__main__`, with
the working directory first on `sys.path`. An uncaught exception reaches the
interpreter's own handling (exit status 1, `sys.excepthook`, the SIGINT exit
for KeyboardInterrupt) with lazyexec's frames cut from its traceback;
`SystemExit` goes through untouched.

This is a start-up path (DESIGN "Never slower than eager"): activation runs
in C++ (`_lazyexec_boot.boot()`, as the `.pth` line's), and nothing here
imports what the program itself would not (no `shutil`, `types`,
`importlib.machinery`, `__future__`): a module loaded eagerly before
activation is one the program cannot load lazily.
"""

import os
import sys


def fail(message: str) -> int:
    """cli.main.fail(), imported only on this error path: the `lazyexec`
    command imports this module without cli.main (cli.command())."""
    from lazyexec.cli.main import fail as report

    return report(message)


USAGE = ("usage: lazyexec run [--image APP.lzi] (SCRIPT.py | -m MODULE | CONSOLE-SCRIPT) [ARGS...]\n"
         "       lazyexec run --image APP.lzi [ARGS...]   (an image built with --main)")


def run(argv: list[str]) -> int:
    # A script, a command on PATH or `-m MODULE`: in C++ (src/native/cli/run.cpp,
    # the same steps as below); None: nothing happened yet, this layer runs it.
    boot = _start_up_extension()
    if boot is not None and hasattr(boot, "run"):
        status = boot.run(argv)
        if status is not None:
            return status
    return run_in_python(argv)


def _start_up_extension():
    if os.environ.get("LAZYEXEC") == "0":
        return None
    try:
        from lazyexec import _lazyexec_boot
    except ImportError:  # a build without the start-up extension
        return None
    return _lazyexec_boot


def run_in_python(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    image = None
    if argv[0] == "--image":
        if len(argv) < 2:
            return fail(USAGE)
        image, argv = argv[1], argv[2:]
        from lazyexec.cli.image_run import entry_point

        entry, problem = entry_point(image)
        if problem is not None and (not argv or _starts_with_shebang(image)):
            return fail(f"cannot read image {problem}")  # an executable image that cannot be read: nothing to run
        if entry is not None:  # an executable image: every argument is the application's
            from lazyexec import activate

            activate(program="image " + os.path.abspath(image), image=image)
            return _run_entry(image, entry, argv)
        if not argv:
            return fail(f"{image}: the image has no entry point (build it with --main): name a program to run")
    if argv[0] == "-m":
        if len(argv) < 2:
            return fail(USAGE)
        module, rest = argv[1], argv[2:]
        _activate("-m " + module, rest, image)
        return _run_module(module, rest)
    target, rest = argv[0], argv[1:]
    path = target if os.path.exists(target) else _which(target)
    if path is None:
        return fail(f"{target}: no such script or command")
    _activate(os.path.abspath(path), rest, image)
    return _run_path(path, rest)


def _activate(program: str, rest: list[str], image: str | None) -> None:
    """Activate for the program named `program` run with arguments `rest`
    (its usage profile: profile.usage()). In C++ when it can
    (importer/boot.cpp; an image too, as LAZYEXEC_IMAGE with the .pth
    line: about 10 M instructions less than the Python layer's activation
    in `run --image -m test test_bisect`); the Python layer when it declines
    (a cache to build, a message to give), and for LAZYEXEC=0."""
    boot = _start_up_extension()
    if boot is not None and boot.boot(program, rest, *([image] if image is not None else [])) is not None:
        return
    _activate_in_python(program, rest, image)


def _activate_in_python(program: str, rest: list[str], image: str | None = None) -> None:
    """The Python layer's activation, where C++ declined (also for run.cpp)."""
    from lazyexec import activate
    from lazyexec.importer.profile import usage

    activate(program=program + usage(rest), image=image)


def _which(command: str) -> str | None:
    """shutil.which(command) on POSIX, without importing shutil (which
    imports fnmatch, re, bz2 and lzma, 37 M instructions on 3.12: more than
    an empty start, and none of it lazy afterwards)."""
    if os.path.dirname(command):
        return command if _executable(command) else None
    path = os.environ.get("PATH")
    if path is None:
        try:
            path = os.confstr("CS_PATH")
        except (AttributeError, ValueError):
            path = os.defpath
    seen = set()
    for directory in path.split(os.pathsep) if path else ():
        if directory in seen:
            continue
        seen.add(directory)
        candidate = os.path.join(directory, command)
        if _executable(candidate):
            return candidate
    return None


def _executable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path)


def _starts_with_shebang(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _run_entry(image: str, entry: str, rest: list[str]) -> int:
    """sys.exit(MODULE.FUNCTION()) as a console script does, with the image
    as argv[0] and its directory first on sys.path."""
    from lazyexec import image as image_stage
    from lazyexec.cli.image_run import call_entry, source_roots

    sys.argv = [image, *rest]
    _set_path0(os.path.dirname(os.path.realpath(image)))
    if image_stage._active is None:  # refused with a warning: the modules import normally from their sources
        sys.path.extend(r for r in source_roots(image) if r not in sys.path)
    raise SystemExit(call_entry(entry))


_replaced_mains: list = []


def _fresh_main():
    """A `__main__` as the interpreter creates it before running anything:
    `__name__`, `__doc__`, `__package__`, `__loader__`, `__spec__`,
    `__annotations__`, `__builtins__`, in that order."""
    import builtins

    # The interpreter runs lazyexec's own entry point (the console script)
    # in the first `__main__` through a borrowed reference and cleans up its
    # namespace afterwards (PyRun_SimpleFile): that module must outlive its
    # place in sys.modules.
    _replaced_mains.append(sys.modules.get("__main__"))
    main = type(sys)("__main__")
    g = main.__dict__
    g["__annotations__"] = {}
    g["__builtins__"] = builtins
    sys.modules["__main__"] = main
    return main


def _safe_path() -> bool:
    return bool(getattr(sys.flags, "safe_path", False))  # -P / PYTHONSAFEPATH (3.11+)


def _set_path0(entry: str) -> None:
    """The entry the interpreter would have put first for the program, in place
    of the one it put first for lazyexec (nothing under -P)."""
    if _safe_path():
        return
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.insert(0, entry)


def _run_module(module: str, rest: list[str]) -> int:
    import runpy

    _set_path0(os.getcwd())
    sys.argv = [module, *rest]  # runpy replaces argv[0] with the module's path, as -m does
    return _run_as_main(runpy, module, alter_argv=True)


def _run_as_main(runpy, module: str, alter_argv: bool) -> int:
    """runpy's own `python -m` path in a fresh __main__; an uncaught exception
    is handed to the interpreter without lazyexec's frames."""
    _fresh_main()
    try:
        runpy._run_module_as_main(module, alter_argv=alter_argv)
    except SystemExit:
        raise
    except BaseException as e:
        _hand_over(e, lambda code: code.co_name == "_run_module_as_main")
        raise
    return 0


def _run_path(path: str, rest: list[str]) -> int:
    sys.argv = [path, *rest]
    if os.path.isdir(path) or _is_zip(path):
        # `python DIR` / `python APP.zip`: DIR/__main__.py as module __main__.
        import runpy

        _set_path0(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
        return _run_as_main(runpy, "__main__", alter_argv=False)
    _set_path0(os.path.dirname(os.path.realpath(path)))
    filename = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    import io

    with io.open_code(path) as f:
        source = f.read()
    main = _fresh_main()
    g = main.__dict__
    # importlib.machinery's class, without importing importlib.machinery.
    SourceFileLoader = sys.modules["_frozen_importlib_external"].SourceFileLoader
    g["__loader__"] = SourceFileLoader("__main__", filename)
    g["__file__"] = filename
    g["__cached__"] = None
    try:
        try:
            code = _compile_main(source, filename)
        except BaseException as e:
            if not isinstance(e, SystemExit):
                _hand_over(e, None)  # the script does not compile: no frame of its own
            raise
        try:
            exec(code, g)
        except SystemExit:
            raise
        except BaseException as e:
            _hand_over(e, lambda c: c is code)
            raise
    finally:
        g.pop("__file__", None)
        g.pop("__cached__", None)
    return 0


def _compile_main(source: bytes, filename: str):
    """compile(source, filename, "exec", dont_inherit=True), in C++ where it
    can be: builtins.compile() first tests for an AST object, which on 3.12
    creates the ast module's classes (11 M instructions) that `python SCRIPT`
    never makes."""
    boot = sys.modules.get("lazyexec._lazyexec_boot")
    if boot is not None and hasattr(boot, "compile_main") and b"\0" not in source:
        return boot.compile_main(source, filename)
    return compile(source, filename, "exec", dont_inherit=True)


def _is_zip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-22, 2)
            return f.read(4) == b"PK\x05\x06"
    except OSError:
        return False


def _hand_over_from(exc: BaseException, first) -> None:
    """_hand_over() for run.cpp: `first` is the name of runpy's function whose
    frame is first (`-m`), or True: the traceback's first frame (the
    script's, run by the interpreter's own PyRun_FileExFlags; a syntax error
    has none)."""
    _hand_over(exc, (lambda code: True) if first is True else (lambda code: code.co_name == first))


def _hand_over(exc: BaseException, first) -> None:
    """Before the program's uncaught exception goes on to the interpreter:
    the traceback the interpreter will report starts at the program's own
    first frame (`first(code)`), or is empty (None). The interpreter then
    handles it as for `python script.py`: sys.excepthook (as the program left
    it), exit status 1, KeyboardInterrupt's exit by SIGINT."""
    tb = exc.__traceback__
    if first is None:
        tb = None
    else:
        while tb is not None and not first(tb.tb_frame.f_code):
            tb = tb.tb_next
        if tb is None:  # not found: leave it whole rather than lose frames
            tb = exc.__traceback__
    hook = sys.excepthook

    def excepthook(kind, value, traceback):
        sys.excepthook = hook
        if value is exc:
            traceback = tb
            value.__traceback__ = tb
            sys.last_traceback = tb
            if hasattr(sys, "last_exc"):
                sys.last_exc = value
        return hook(kind, value, traceback)

    sys.excepthook = excepthook
