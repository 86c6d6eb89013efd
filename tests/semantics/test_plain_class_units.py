"""Plain classes (`class C(B1, ...):`, no decorator, keyword or type
parameter; bases plain names) are stored as their body's code and built at
first use as LOAD_BUILD_CLASS builds them (artifact format 11): the same
classes as eagerly (differential), stored in that form (lazy-only)."""

import marshal
import textwrap

from harness import Case, lazy_runs_match_eager, run, write

MODULE = textwrap.dedent('''\
    __lazy_module__ = True
    import os.path

    class Base:
        registry = []
        def hello(self):
            return "base"

    class Child(Base):
        """A docstring."""
        def hello(self):
            return "child+" + super().hello()

    class Error(ValueError):
        pass

    class Two(Child, Error):
        x: int = 3
        def where(self):
            return __class__.__qualname__

    class UsesModule:
        sep = os.path.sep
        from os import path as p

    class Late(Base):
        pass

    def make():
        return Two()
    ''')

MAIN = textwrap.dedent('''\
    import m
    if LAZY:
        import lazyexec
        assert lazyexec.is_pending(m, "Two") and lazyexec.is_pending(m, "Base"), "deferred"
    t = m.make()
    print(type(t).__mro__[1:4], t.hello(), t.where(), m.Two.__qualname__, m.Two.__module__)
    print(m.Child.__doc__, m.Two.__annotations__, m.Two.x)
    print(m.UsesModule.sep, m.UsesModule.p.__name__)
    try:
        raise m.Error("boom")
    except ValueError as e:
        print(type(e).__name__, e)
    print(m.Base.registry, m.Late.__bases__, m.Late.__mro__)
    ''')


def case() -> Case:
    return Case("plain_classes", {"m.py": MODULE, "main.py": MAIN}, 0)


def test_plain_classes_are_the_same_classes_as_eagerly(tmp_path):
    write(case(), tmp_path)
    lazy_runs_match_eager(tmp_path)


def test_plain_classes_are_stored_as_their_body(tmp_path):
    write(case(), tmp_path)
    assert run(tmp_path, lazy=True).returncode == 0
    from lazyexec import compile as compile_stage
    from lazyexec.config import Config

    plan = compile_stage.build_plan((tmp_path / "m.py").read_bytes(), str(tmp_path / "m.py"), "m", False,
                                    Config(), require_marker=True, pep810=True)
    kinds = {u[1][0]: u[0][0] if isinstance(u[0], tuple) else type(u[0]).__name__ for u in plan.units if u[1]}
    assert kinds["Base"] == kinds["Child"] == kinds["Two"] == kinds["Late"] == kinds["Error"] == "class"
    bases = {u[1][0]: u[0][2] for u in plan.units if u[1] and isinstance(u[0], tuple) and u[0][0] == "class"}
    assert bases["Two"] == ("Child", "Error") and bases["Base"] == ()
    body = marshal.loads([u[0][1] for u in plan.units if u[1] == ("Child",)][0])
    assert body.co_name == "Child"


# A plain class whose body's run binds a name in its own module's namespace:
# importing a package's submodule from the package's class body binds
# `pkg.sub` there (importlib sets the attribute). Publishing the class then
# takes the general path (names inserted meanwhile), not the single-name one.
PACKAGE = textwrap.dedent('''\
    __lazy_module__ = True

    class Uses:
        from pkg import sub as s
        value = s.VALUE

    class Plain:
        pass
    ''')

MAIN_PACKAGE = textwrap.dedent('''\
    import pkg
    if LAZY:
        import lazyexec
        assert lazyexec.is_pending(pkg, "Uses"), "deferred"
    print(pkg.Uses.value, pkg.Uses.s.__name__, "sub" in NAMESPACE(pkg), pkg.sub.VALUE, pkg.Plain.__qualname__)
    print(sorted(k for k in NAMESPACE(pkg) if not k.startswith("__")))
    ''')


def test_a_plain_class_whose_body_binds_a_module_global_is_the_same_as_eagerly(tmp_path):
    files = {"pkg/__init__.py": PACKAGE, "pkg/sub.py": "VALUE = 42\n", "main.py": MAIN_PACKAGE}
    write(Case("plain_class_binds_global", files, 0), tmp_path)
    eager = lazy_runs_match_eager(tmp_path)
    assert "42 pkg.sub True 42 Plain" in eager.stdout
