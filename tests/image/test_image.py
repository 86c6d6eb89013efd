"""The application image end to end (docs/image-format.md): build, serve,
run, verify; damaged images fall back to normal import; a served module costs
no file-system call (strace). Differential where it can be: the same program
eagerly and from the image prints the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

APP = {
    "shop/__init__.py": "__lazy_module__ = True\nimport json\nVERSION = '1.0'\n\ndef version():\n    return VERSION\n",
    "shop/cart.py": ("__lazy_module__ = True\nimport decimal\n\nclass Cart:\n    def __init__(self):\n"
                     "        self.items = []\n    def add(self, price):\n        self.items.append(decimal.Decimal(price))\n"
                     "        return self\n    def total(self):\n        return sum(self.items)\n"),
    "shop/util.py": "import textwrap\nBANNER = textwrap.dedent('''\n    shop\n''').strip()\n",
    "shop/cli.py": ("import sys\nfrom shop import version\nfrom shop.cart import Cart\nfrom shop.util import BANNER\n\n"
                    "def main():\n    c = Cart().add('1.50').add('2.25')\n"
                    "    print(BANNER, version(), c.total(), sys.argv[1:])\n    return 7\n"),
    "main.py": ("import sys, lazyexec, shop, shop.cart\n"
                "print('lazy cart' if lazyexec.is_pending(shop.cart, 'Cart') else 'eager cart')\n"
                "from shop.cli import main\n"
                "print(type(shop.__loader__).__name__, shop.__path__ == [shop.__spec__.origin.rsplit('/', 1)[0]])\n"
                "main()\n"),
}


def env(tmp_path: Path, **extra) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("LAZYEXEC")}
    e["LAZYEXEC_CACHE_DIR"] = str(tmp_path / "cache")
    e["LAZYEXEC_PROFILE"] = "0"
    e.update(extra)
    return e


def lazyexec(tmp_path: Path, *args, cwd=None, check=True, **extra):
    r = subprocess.run([sys.executable, "-m", "lazyexec", *map(str, args)], cwd=cwd or tmp_path / "app",
                       env=env(tmp_path, **extra), capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def app(tmp_path):
    root = tmp_path / "app"
    for name, text in APP.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def build(tmp_path, *args, out="app.lzi"):
    lazyexec(tmp_path, "image", "build", "-q", "-o", tmp_path / out, *args)
    return tmp_path / out


def test_served_program_prints_what_it_prints_eagerly_and_stays_lazy(tmp_path, app):
    image = build(tmp_path, "shop", "json", "decimal", "textwrap")
    eager = subprocess.run([sys.executable, "main.py", "x"], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    served = lazyexec(tmp_path, "run", "--image", image, "main.py", "x")
    assert served.stderr == ""
    assert eager.stdout.splitlines()[2:] == served.stdout.splitlines()[2:]  # what the program computes
    assert served.stdout.splitlines()[:2] == ["lazy cart", "ImageLoader True"]
    assert eager.stdout.splitlines()[:2] == ["eager cart", "SourceFileLoader True"]


def test_records_are_lazy_plans_for_marked_modules_and_code_for_the_rest(tmp_path, app):
    image = build(tmp_path, "shop")
    from lazyexec.image import open_image

    kinds = {r[0]: r[4] for r in open_image(image, check_runtime=False).records()}
    assert kinds == {"shop": True, "shop.cart": True, "shop.util": False, "shop.cli": False}


def test_executable_image_runs_its_entry_point_with_arguments(tmp_path, app):
    image = build(tmp_path, "shop", "--main", "shop.cli:main", out="shop.lzi")
    assert image.read_bytes().startswith(b"#!/usr/bin/env -S ")
    assert os.access(image, os.X_OK)
    r = subprocess.run([str(image), "a", "b"], cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (7, "shop 1.0 3.75 ['a', 'b']", "")


def test_environment_variable_serves_the_image_to_programs_started_by_others(tmp_path, app):
    image = build(tmp_path, "shop")
    code = "import lazyexec; lazyexec.activate(); import shop; print(type(shop.__loader__).__name__)"
    r = subprocess.run([sys.executable, "-c", code], cwd=app, env=env(tmp_path, LAZYEXEC_IMAGE=str(image)),
                       capture_output=True, text=True)
    assert (r.stdout.strip(), r.stderr) == ("ImageLoader", "")


def _damage(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "bad_magic":
        return b"X" + data[1:]
    if how == "wrong_version":
        return data[:8] + (99).to_bytes(2, "little") + data[10:]
    if how == "wrong_interpreter":
        return data[:12] + b"\0\0\r\n" + data[16:]
    if how == "payload_byte_flipped":
        i = len(data) - 40
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    if how == "empty":
        return b""
    raise AssertionError(how)


def test_a_module_whose_file_name_is_not_an_identifier_is_served(tmp_path, app):
    """A module file importable only by name (`_sysconfigdata__linux_x86_64-linux-gnu.py`,
    which sysconfig imports with importlib): FileFinder takes any name
    without a dot, so the builder selects it (a directory, or --stdlib) and
    the image serves it, not a path search."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "_data__linux-gnu.py").write_text("VALUE = {'answer': 42}\n")
    (lib / "plain.py").write_text("X = 1\n")
    (lib / "not.a.module.py").write_text("raise SystemExit('never imported')\n")
    image = build(tmp_path, lib)
    (app / "probe.py").write_text(
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(lib)!r})\n"
        "m = importlib.import_module('_data__linux-gnu')\n"
        "print(m.VALUE, type(m.__loader__).__name__)\n")
    eager = subprocess.run([sys.executable, "probe.py"], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    served = lazyexec(tmp_path, "run", "--image", image, "probe.py")
    assert eager.stdout == "{'answer': 42} SourceFileLoader\n", eager.stderr
    assert served.stdout == "{'answer': 42} ImageLoader\n", served.stderr
    from lazyexec.image import open_image

    names = {r[0] if isinstance(r, tuple) else r for r in open_image(image).records()}
    assert "_data__linux-gnu" in names and "plain" in names, names
    assert not any("not" in n for n in names), names  # a dotted stem is no module name


def test_run_image_activates_in_cpp_as_the_pth_start_does(tmp_path, app):
    """`lazyexec run --image APP.lzi PROGRAM` activates as `lazyexec run`
    without an image and as the .pth start with LAZYEXEC_IMAGE do: in C++
    (_lazyexec_boot.boot(program, args, image)), no Python module of
    lazyexec's importer or image stage loaded; the program is served from
    the image and names the usage profile as the Python layer names it."""
    image = build(tmp_path, "shop", "json", "decimal", "textwrap")
    (app / "probe.py").write_text(
        "import sys, shop, shop.cart\n"
        "print(type(shop.__loader__).__name__, shop.cart.Cart().add('1.5').total())\n"
        "print(sorted(m for m in ('lazyexec.importer', 'lazyexec.image', 'lazyexec.config') if m in sys.modules))\n"
        "boot = sys.modules['lazyexec._lazyexec_boot'].boot_state()\n"
        "from lazyexec import config\n"
        "from lazyexec.importer import profile\n"
        "profile.load(config.load(), program=profile.os.path.abspath(sys.argv[0]) + profile.usage(sys.argv[1:]))\n"
        "print(boot is not None and boot['profile'] == profile._path)\n")
    lazyexec(tmp_path, "run", "--image", image, "probe.py", "a", "--b", LAZYEXEC_PROFILE="1")  # caches warm
    r = lazyexec(tmp_path, "run", "--image", image, "probe.py", "a", "--b", LAZYEXEC_PROFILE="1",
                 LAZYEXEC_BOOT_TRACE="1")
    assert r.stderr == ""  # not declined
    assert r.stdout.splitlines() == ["ImageLoader 1.5", "[]", "True"]


@pytest.mark.parametrize("how", ["truncated", "bad_magic", "wrong_version", "wrong_interpreter",
                                 "payload_byte_flipped", "empty"])
def test_a_damaged_image_warns_and_the_program_imports_normally(tmp_path, app, how):
    image = build(tmp_path, "shop")
    image.write_bytes(_damage(image.read_bytes(), how))
    eager = subprocess.run([sys.executable, "main.py"], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    r = lazyexec(tmp_path, "run", "--image", image, "main.py", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2:] == eager.stdout.splitlines()[2:]
    assert "RuntimeWarning: lazyexec:" in r.stderr and str(image) in r.stderr
    assert "Traceback" not in r.stderr


def test_verify_reports_a_damaged_payload_and_a_changed_source(tmp_path, app):
    image = build(tmp_path, "shop")
    assert "OK" in lazyexec(tmp_path, "image", "verify", image).stdout
    (app / "shop" / "util.py").write_text("BANNER = 'changed'\n")
    r = lazyexec(tmp_path, "image", "verify", image, check=False)
    assert r.returncode == 1 and "shop.util" in r.stdout and "changed" in r.stdout
    image.write_bytes(_damage(image.read_bytes(), "payload_byte_flipped"))
    r = lazyexec(tmp_path, "image", "verify", image, check=False)
    assert r.returncode == 1 and "damaged" in r.stdout


def test_check_none_serves_the_built_code_and_a_file_added_on_sys_path_cannot_swap_in(tmp_path, app):
    image = build(tmp_path, "shop", "textwrap")
    (app / "shop" / "util.py").write_text("BANNER = 'changed'\n")
    (app / "textwrap.py").write_text("raise SystemExit('shadowing textwrap ran')\n")  # first on sys.path
    r = lazyexec(tmp_path, "run", "--image", image, "main.py")
    assert "shop 1.0" in r.stdout and "changed" not in r.stdout


@pytest.mark.parametrize("check", ["mtime", "hash"])
def test_check_mtime_or_hash_imports_a_changed_source_normally_with_a_warning(tmp_path, app, check):
    image = build(tmp_path, "shop")
    util = app / "shop" / "util.py"
    util.write_text("BANNER = 'changed'\n")
    os.utime(util, ns=(1, 1))  # a different mtime whatever the clock's resolution
    r = lazyexec(tmp_path, "run", "--image", image, "main.py", LAZYEXEC_IMAGE_CHECK=check)
    assert "changed 1.0" in r.stdout
    assert "shop.util" in r.stderr and "RuntimeWarning" in r.stderr


def test_check_chosen_at_build_is_the_default(tmp_path, app):
    image = build(tmp_path, "shop", "--check", "mtime")
    (app / "shop" / "util.py").write_text("BANNER = 'changed'\n")
    os.utime(app / "shop" / "util.py", ns=(1, 1))
    assert "changed 1.0" in lazyexec(tmp_path, "run", "--image", image, "main.py").stdout


def test_trace_records_first_use_order_and_selects_the_modules_used(tmp_path, app):
    image = build(tmp_path, "--trace", f"{sys.executable} main.py")
    from lazyexec.image import open_image

    names = [r[0] for r in open_image(image, check_runtime=False).records()]
    assert names.index("shop") < names.index("shop.cart") < names.index("shop.cli") < names.index("shop.util")
    assert "json" in names and "decimal" in names and not any(n.startswith("lazyexec") for n in names)
    assert "main" not in names or names.index("main") >= 0


def test_trace_of_python_m_serves_the_module_it_ran_as_main(tmp_path, app):
    """`python -m shop.cli` runs shop.cli as __main__ (runpy asks the finders
    for its spec, then runs its code): traced, it is in the image, and the
    served run finds and runs it from there, as eagerly."""
    (app / "shop" / "__main__.py").write_text("import sys\nprint('main of', __spec__.name, type(__spec__.loader).__name__)\n")
    image = build(tmp_path, "--trace", f"{sys.executable} -m shop")
    from lazyexec.image import open_image

    names = [r[0] for r in open_image(image, check_runtime=False).records()]
    assert "shop.__main__" in names and names.index("shop") < names.index("shop.__main__")
    eager = subprocess.run([sys.executable, "-m", "shop"], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    served = lazyexec(tmp_path, "run", "--image", image, "-m", "shop")
    assert (eager.stdout, served.stdout) == ("main of shop.__main__ SourceFileLoader\n",
                                             "main of shop.__main__ ImageLoader\n")
    assert served.stderr == ""


def test_trace_keeps_a_module_the_program_dropped_from_sys_modules_before_it_exited(tmp_path, app):
    """regrtest unloads each test module and what it imported when the test
    ends; test.support's import_fresh_module drops and reimports modules:
    the trace still has them, in the order they were first imported."""
    (app / "dropper.py").write_text("import sys, shop.util\ndel sys.modules['shop.util']\nimport shop.cart\n")
    image = build(tmp_path, "--trace", f"{sys.executable} dropper.py")
    from lazyexec.image import open_image

    names = [r[0] for r in open_image(image, check_runtime=False).records()]
    assert names.index("shop") < names.index("shop.util") < names.index("shop.cart")
    assert "textwrap" in names


def _unit_offsets(data: bytes, name: str) -> list[int]:
    """Where each unit code entry of module `name`'s plan points (format 4)."""
    at = _record_field(data, name, 32, 8)
    return [int.from_bytes(data[at + 8 + 24 * k: at + 16 + 24 * k], "little")
            for k in range(int.from_bytes(data[at:at + 4], "little"))]


def test_trace_puts_the_code_of_the_units_the_command_ran_first_in_the_order_they_ran(tmp_path, app):
    """main.py runs shop.cart's `class Cart` (entry 1) before its deferred
    `import decimal` (entry 0, when Cart.add runs) and never shop's
    `import json` (entry 0) while it runs `def version` (entry 1)."""
    untraced = build(tmp_path, "shop", "json", "decimal", "textwrap", out="plain.lzi").read_bytes()
    traced = build(tmp_path, "--trace", f"{sys.executable} main.py").read_bytes()
    for data in (untraced, traced):
        assert len(_unit_offsets(data, "shop")) == 2 and len(_unit_offsets(data, "shop.cart")) == 2
    json_, version = _unit_offsets(untraced, "shop")
    assert json_ < version  # module by module, entry by entry
    json_, version = _unit_offsets(traced, "shop")
    decimal_, cart = _unit_offsets(traced, "shop.cart")
    assert version < cart < decimal_ < json_, (version, cart, decimal_, json_)
    r = lazyexec(tmp_path, "run", "--image", tmp_path / "app.lzi", "main.py")
    assert r.stdout.splitlines()[0] == "lazy cart" and r.stderr == ""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_served_module_costs_no_file_system_call(tmp_path, app):
    image = build(tmp_path, "shop", "json", "textwrap", "decimal", "numbers", "re", "enum")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, sys, lazyexec\n"
        f"lazyexec.activate(image={str(image)!r})\n"
        "import lazyexec.image.importlib_bootstrap, lazyexec.importer.importlib_bootstrap, lazyexec.runtime\n"
        "import lazyexec.store, _json, _decimal, _pydecimal\n"  # extension modules this image does not hold
        "os.write(1, b'IMAGE-PROBE-BEGIN\\n')\n"
        "import shop, shop.util, shop.cli, json, textwrap\n"
        "os.write(1, b'IMAGE-PROBE-END\\n')\n")
    log = tmp_path / "strace.log"
    r = subprocess.run(["strace", "-f", "-o", str(log), "-e", "trace=%file,%desc", sys.executable, str(probe)],
                       cwd=app, env=env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = log.read_text().splitlines()
    begin = next(i for i, l in enumerate(lines) if 'write(1, "IMAGE-PROBE-BEGIN' in l)
    end = next(i for i, l in enumerate(lines) if 'write(1, "IMAGE-PROBE-END' in l)
    # Memory, not files: the allocator's anonymous mappings (%desc lists mmap).
    calls = [l for l in lines[begin + 1:end] if "exited" not in l and "MAP_ANONYMOUS" not in l]
    assert calls == []


def test_a_submodule_is_served_only_where_its_parent_package_looks(tmp_path, app):
    """A parent package that did not come from the image (setuptools'
    distutils shim in front of the stdlib's) keeps its own submodules."""
    image = build(tmp_path, "shop")
    code = ("import sys, lazyexec.image as i; f = i.activate(sys.argv[1]);"
            "print(f.find_spec('shop.util', [sys.argv[2]]) is not None, f.find_spec('shop.util', ['/elsewhere']),"
            " f.find_spec('shop', None) is not None, f.find_spec('absent', None))")
    r = subprocess.run([sys.executable, "-c", code, str(image), str(app / "shop") + "/"], cwd=tmp_path,
                       env=env(tmp_path), capture_output=True, text=True)
    assert (r.stdout.split(), r.stderr) == (["True", "None", "True", "None"], "")


def test_the_finder_takes_find_specs_arguments_by_position_or_keyword(tmp_path, app):
    """find_spec(fullname, path=None, target=None) as PathFinder's: by
    position or keyword; a bad call raises TypeError as a Python method's."""
    image = build(tmp_path, "shop")
    code = ("import sys, lazyexec.image as i; f = i.activate(sys.argv[1]); d = sys.argv[2]\n"
            "print(f.find_spec(fullname='shop.util', path=[d]).name, f.find_spec('shop.util', path=[d], target=None).name,"
            " f.find_spec('shop.util', [d], None).name, f.find_spec('shop', target=None).name,"
            " f.find_spec('shop.util', path=['/elsewhere']))\n"
            "for args, kwargs in [((), {}), ((1,), {}), (('a', None, None, None), {}), (('a',), {'fullname': 'a'}),"
            " (('a',), {'other': 1}), ((), {'path': None})]:\n"
            "    try:\n"
            "        f.find_spec(*args, **kwargs)\n"
            "    except TypeError:\n"
            "        print('TypeError')\n")
    r = subprocess.run([sys.executable, "-c", code, str(image), str(app / "shop")], cwd=tmp_path,
                       env=env(tmp_path), capture_output=True, text=True)
    assert (r.stdout.split(), r.stderr) == (["shop.util", "shop.util", "shop.util", "shop", "None"] + ["TypeError"] * 6, "")


def test_an_image_built_for_another_optimization_level_is_ignored_with_a_warning(tmp_path, app):
    image = build(tmp_path, "shop")
    r = subprocess.run([sys.executable, "-O", "-m", "lazyexec", "run", "--image", str(image), "main.py"],
                       cwd=app, env=env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0 and "shop 1.0" in r.stdout
    assert "optimization level 0" in r.stderr and "ImageLoader" not in r.stdout


def test_an_executable_image_for_another_interpreter_still_runs_its_entry_point_importing_normally(tmp_path, app):
    image = build(tmp_path, "shop", "--main", "shop.cli:main", out="shop.lzi")
    data = bytearray(image.read_bytes())
    base = data.index(b"\x89LZI")
    data[base + 12: base + 16] = b"\0\0\r\n"  # another interpreter's bytecode magic
    image.write_bytes(bytes(data))
    r = subprocess.run([str(image), "z"], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip()) == (7, "shop 1.0 3.75 ['z']")
    assert "another Python version" in r.stderr


def test_a_truncated_executable_image_says_so(tmp_path, app):
    image = build(tmp_path, "shop", "--main", "shop.cli:main", out="shop.lzi")
    image.write_bytes(image.read_bytes()[:200])
    r = subprocess.run([str(image), "z"], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 2 and "cannot read image" in r.stderr and "truncated" in r.stderr


def test_run_image_with_dash_m_runs_the_code_stored_in_the_image(tmp_path, app):
    (app / "shop" / "__main__.py").write_text("from shop.cli import main\nraise SystemExit(main())\n")
    image = build(tmp_path, "shop")
    (app / "shop" / "__main__.py").write_text("raise SystemExit('the source ran, not the image')\n")
    r = lazyexec(tmp_path, "run", "--image", image, "-m", "shop", "q", check=False)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (7, "shop 1.0 3.75 ['q']", "")


SPEC_PROBE = ("import sys, importlib, importlib.machinery, lazyexec\n"
              "lazyexec.activate(image=sys.argv[1]) if sys.argv[1] != '-' else None\n"
              "for name in sys.argv[2:]:\n"
              "    m = importlib.import_module(name); s = m.__spec__\n"
              "    print(name, s.name, s.origin, s.cached, s.has_location, s.submodule_search_locations, s.parent,\n"
              "          getattr(m, '__file__', None), getattr(m, '__cached__', None), m.__package__,\n"
              "          getattr(m, '__path__', None), getattr(s.loader, '__name__', None),\n"
              "          s.loader == importlib.machinery.SourceFileLoader(name, s.origin), m.__loader__ is s.loader)\n"
              "    keys = list(vars(m)); print(keys[:keys.index('__cached__') + 1] if '__cached__' in keys else keys[:5])\n"
              "print(*sorted({type(sys.modules[n].__spec__.loader).__name__ for n in sys.argv[2:4]}))\n")


def test_a_served_module_has_the_spec_and_attributes_an_eager_import_gives(tmp_path, app):
    """The spec is built in C++ (no ModuleSpec.__init__, `cached` computed
    there), the module by the loader's create_module with __path__, __file__
    and __cached__ set (__loader__ and __package__ in their slots): every
    field and the module's first keys, in order,
    as eagerly. A frozen module (3.11+: __hello__,
    whose source is in the stdlib too) stays FrozenImporter's though the
    image holds it: the image finder sits ahead of the frozen importer."""
    names = ["shop", "shop.util", "json", "json.decoder"] + (["__hello__"] if sys.version_info >= (3, 11) else [])
    image = build(tmp_path, *names)
    probe = app / "spec_probe.py"
    probe.write_text(SPEC_PROBE)
    eager = subprocess.run([sys.executable, str(probe), "-", *names], cwd=app, env=env(tmp_path),
                           capture_output=True, text=True)
    served = subprocess.run([sys.executable, str(probe), str(image), *names], cwd=app, env=env(tmp_path),
                            capture_output=True, text=True)
    assert eager.returncode == 0 and served.returncode == 0, (eager.stderr, served.stderr)
    assert served.stdout.splitlines()[:-1] == eager.stdout.splitlines()[:-1] and served.stderr == ""
    assert served.stdout.count("None True True\n") == 4  # the loader is a SourceFileLoader's equal, the module's
    assert (eager.stdout.splitlines()[-1], served.stdout.splitlines()[-1]) == ("SourceFileLoader", "ImageLoader")
    if sys.version_info >= (3, 11):
        from lazyexec.image import open_image

        assert "FrozenImporter" in served.stdout and open_image(image, check_runtime=False).find("__hello__")


def _extension_module() -> str | None:
    """A stdlib module this interpreter loads from a shared library
    (ExtensionFileLoader; Debian builds some into the binary)."""
    from importlib.machinery import ExtensionFileLoader
    from importlib.util import find_spec

    for name in ("_json", "_bisect", "_csv", "array", "_decimal"):
        spec = find_spec(name)
        if spec is not None and isinstance(spec.loader, ExtensionFileLoader):
            return name
    return None


@pytest.fixture
def extension_app(app):
    """`extpkg._speedups`: a copy of a stdlib extension module's library
    inside a package of the application (its PyInit_ name is the last part
    of the module's name, so the copy is renamed `_json` etc. as needed)."""
    name = _extension_module()
    if name is None:
        pytest.skip("no stdlib extension module in a shared library on this interpreter")
    from importlib.util import find_spec

    origin = find_spec(name).origin
    pkg = app / "extpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    copy = pkg / os.path.basename(origin)
    shutil.copy2(origin, copy)
    (pkg / f"{name}.py").write_text("raise SystemExit('the source shadowed by the extension module ran')\n")
    return name, copy


EXTENSION_PROBE = ("import sys, importlib, importlib.machinery, lazyexec\n"
                   "lazyexec.activate(image=sys.argv[1]) if sys.argv[1] != '-' else None\n"
                   "for name in sys.argv[2:]:\n"
                   "    m = importlib.import_module(name); s = m.__spec__\n"
                   "    print(name, s.name, s.origin, s.cached, s.has_location, s.submodule_search_locations, s.parent,\n"
                   "          m.__file__, getattr(m, '__cached__', None), m.__package__, type(s.loader).__name__,\n"
                   "          s.loader == importlib.machinery.ExtensionFileLoader(name, s.origin), m.__loader__ is s.loader,\n"
                   "          callable(getattr(m, 'scanstring', None) or getattr(m, 'bisect', None) or print))\n"
                   "print(sorted(vars(m))[:8])\n")


def test_an_extension_module_is_served_from_its_record_with_the_spec_an_eager_import_gives(tmp_path, extension_app):
    """Format 5: an extension module's record names its library; the spec is
    PathFinder's (ExtensionFileLoader, origin, no cached), found without a
    search of sys.path. In a directory holding both, the library wins over
    the `.py` file, as importlib's FileFinder decides."""
    name, copy = extension_app
    image = build(tmp_path, "extpkg", name)
    from lazyexec.image import open_image

    records = {r[0]: r for r in open_image(image, check_runtime=False).records()}
    inner = f"extpkg.{name}"
    assert records[inner][1] == str(copy) and records[inner][9] is True and records[inner][8] is False
    assert records[name][9] is True and records["extpkg"][9] is False
    assert open_image(image, check_runtime=False).check_payload(inner) is None
    probe = app_dir(tmp_path) / "ext_probe.py"
    probe.write_text(EXTENSION_PROBE)
    eager = subprocess.run([sys.executable, str(probe), "-", name, inner], cwd=app_dir(tmp_path), env=env(tmp_path),
                           capture_output=True, text=True)
    served = subprocess.run([sys.executable, str(probe), str(image), name, inner], cwd=app_dir(tmp_path),
                            env=env(tmp_path), capture_output=True, text=True)
    assert eager.returncode == 0 and served.returncode == 0, (eager.stderr, served.stderr)
    assert served.stdout == eager.stdout and served.stderr == ""
    assert served.stdout.count(" ExtensionFileLoader True True True\n") == 2
    # image verify hashes the library as it hashes a source.
    assert lazyexec(tmp_path, "image", "verify", image).returncode == 0
    copy.write_bytes(copy.read_bytes() + b"\0")
    r = lazyexec(tmp_path, "image", "verify", image, check=False)
    assert r.returncode == 1 and f"{inner}: {copy} changed" in r.stdout


def app_dir(tmp_path: Path) -> Path:
    return tmp_path / "app"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_served_extension_module_costs_no_path_search(tmp_path, extension_app):
    """The only file-system calls of importing a served extension module are
    the dynamic loader's, on its own library: no directory of sys.path is
    looked at."""
    name, copy = extension_app
    image = build(tmp_path, "extpkg")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, sys, lazyexec\n"
        f"lazyexec.activate(image={str(image)!r})\n"
        "import lazyexec.image.importlib_bootstrap, lazyexec.importer.importlib_bootstrap, lazyexec.runtime\n"
        "import lazyexec.store, extpkg\n"
        "os.write(1, b'IMAGE-PROBE-BEGIN\\n')\n"
        f"import extpkg.{name}\n"
        "os.write(1, b'IMAGE-PROBE-END\\n')\n")
    log = tmp_path / "strace.log"
    r = subprocess.run(["strace", "-f", "-o", str(log), "-e", "trace=%file,%desc", sys.executable, str(probe)],
                       cwd=app_dir(tmp_path), env=env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = log.read_text().splitlines()
    begin = next(i for i, l in enumerate(lines) if 'write(1, "IMAGE-PROBE-BEGIN' in l)
    end = next(i for i, l in enumerate(lines) if 'write(1, "IMAGE-PROBE-END' in l)
    calls = [l.split(None, 1)[1] for l in lines[begin + 1:end]]
    # The path argument of each call (the bytes read() returns are not one).
    paths = [c.split('"')[1] for c in calls if c.count('"') >= 2 and not c.startswith(("read(", "pread64("))]
    assert paths and set(paths) <= {str(copy), ""}, lines[begin + 1:end]


def test_trace_records_the_extension_modules_the_command_imported(tmp_path, extension_app):
    name, copy = extension_app
    (app_dir(tmp_path) / "use_ext.py").write_text(f"import extpkg.{name}, {name}\nprint('ok')\n")
    image = build(tmp_path, "--trace", f"{sys.executable} use_ext.py")
    from lazyexec.image import open_image

    records = {r[0]: r for r in open_image(image, check_runtime=False).records()}
    assert records[f"extpkg.{name}"][1] == str(copy) and records[f"extpkg.{name}"][9] is True
    assert records[name][9] is True
    r = lazyexec(tmp_path, "run", "--image", image, "use_ext.py")
    assert (r.stdout, r.stderr) == ("ok\n", "")


def test_the_builder_takes_the_file_importlib_would_for_one_name(tmp_path, extension_app):
    """A package directory before an extension module before a source file
    of the same name (FileFinder's order)."""
    from lazyexec.image.build import sources_under

    name, copy = extension_app
    root = app_dir(tmp_path)
    (root / "dup").mkdir()
    (root / "dup" / "__init__.py").write_text("")
    (root / "dup.py").write_text("")
    got = {s.name: s for s in sources_under(str(root))}
    assert got["dup"].is_package and got["dup"].origin.endswith("dup/__init__.py")
    assert got[f"extpkg.{name}"].extension and got[f"extpkg.{name}"].origin == str(copy)


def test_stdlib_selection_has_the_extension_modules_of_lib_dynload():
    from importlib.util import find_spec

    from lazyexec.image.build import select

    name = _extension_module()
    if name is None:
        pytest.skip("no stdlib extension module in a shared library on this interpreter")
    got = {s.name: s for s in select([], True, [])[0]}
    assert got[name].extension and got[name].origin == find_spec(name).origin
    assert not got["json"].extension


def test_an_error_raised_by_a_served_module_has_the_traceback_of_an_eager_import(tmp_path, app):
    (app / "boom.py").write_text("import sys\n\nraise ValueError('boom at import')\n")
    (app / "lazyboom.py").write_text("__lazy_module__ = True\nimport json\n\nraise ValueError('lazy boom')\n")
    (app / "main2.py").write_text("import sys\ntry:\n    import boom\nexcept ValueError:\n"
                                  "    import traceback; traceback.print_exc()\nimport lazyboom\n")
    image = build(tmp_path, "boom", "lazyboom")
    eager = subprocess.run([sys.executable, "main2.py"], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    r = lazyexec(tmp_path, "run", "--image", image, "main2.py", check=False)
    assert r.returncode == eager.returncode == 1
    # The eager module's frames are exactly eager's; the plan's keep the
    # plan runner's frames out of the way of the module's own line.
    assert r.stderr.split("Traceback")[1] == eager.stderr.split("Traceback")[1]
    assert r.stderr.strip().endswith("ValueError: lazy boom") and 'lazyboom.py", line 4' in r.stderr


def test_a_module_the_usage_profile_says_was_used_whole_runs_its_eager_code_from_the_image(tmp_path, app):
    """Format 2 keeps a plan module's eager code too: the first run is lazy
    and learns that shop.cart was used whole; the next one loads it eagerly,
    from the image (the source changed since, check none: not read)."""
    image = build(tmp_path, "shop")
    profile = {"LAZYEXEC_PROFILE": "1"}
    first = lazyexec(tmp_path, "run", "--image", image, "main.py", **profile)
    assert first.stdout.splitlines()[0] == "lazy cart"
    (app / "shop" / "cart.py").write_text("raise SystemExit('the source ran, not the image')\n")
    second = lazyexec(tmp_path, "run", "--image", image, "main.py", **profile)
    assert second.stdout.splitlines()[0] == "eager cart"
    assert second.stdout.splitlines()[1:] == first.stdout.splitlines()[1:]
    assert second.stderr == ""


def test_trace_hands_over_to_the_sitecustomize_it_shadows_without_an_error(tmp_path, app):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['SITECUSTOMIZE_RAN'] = '1'\n")
    (app / "show.py").write_text("import os, json\nprint('ran', os.environ.get('SITECUSTOMIZE_RAN'))\n")
    for extra in ({"PYTHONPATH": str(site)}, {}):
        r = lazyexec(tmp_path, "image", "build", "-o", tmp_path / "t.lzi", "--trace", f"{sys.executable} show.py",
                     **extra)
        assert "Error in sitecustomize" not in r.stderr and "Traceback" not in r.stderr
        assert ("ran 1" if extra else "ran None") in r.stdout


def _record_field(data: bytes, name: str, at: int, size: int) -> int:
    """A field of module `name`'s record (docs/image-format.md, formats 2-4)."""
    count = int.from_bytes(data[24:28], "little")
    records = int.from_bytes(data[40:48], "little")
    for i in range(count):
        r = records + 96 * i
        off, length = int.from_bytes(data[r:r + 4], "little"), int.from_bytes(data[r + 4:r + 8], "little")
        if data[off:off + length] == name.encode():
            return int.from_bytes(data[r + at:r + at + size], "little")
    raise KeyError(name)


@pytest.mark.parametrize("blob", ["plan", "eager code", "unit code"])
def test_a_damaged_plan_or_eager_code_warns_once_and_the_module_loads_from_its_source(tmp_path, app, blob):
    """A plan module's payloads: the plan and its units' code out of line
    (lazy run), its eager code (the usage profile's used-whole run). Any of
    them damaged: one warning naming it, the program's output unchanged: the
    module imports from its source, or (a unit's code, checked when the unit
    first runs, after the module ran) that unit's code is compiled again
    from the source, which still gives the code the image was built with."""
    image = build(tmp_path, "shop")
    profile = {"LAZYEXEC_PROFILE": "1"}
    good = lazyexec(tmp_path, "run", "--image", image, "main.py", **profile)  # learns: shop.cart used whole
    data = bytearray(image.read_bytes())
    at = _record_field(data, "shop.cart", 32 if blob != "eager code" else 72, 8)
    if blob == "unit code":  # the plan payload's table (format 4): count, zero, then (offset, length, 0, hash)
        assert int.from_bytes(data[at:at + 4], "little") >= 1
        at = int.from_bytes(data[at + 8:at + 16], "little")
    data[at + 5] ^= 0x55
    image.write_bytes(bytes(data))
    # The plan is read when the profile is off; the eager code when it says "used whole".
    r = lazyexec(tmp_path, "run", "--image", image, "main.py", check=False,
                 LAZYEXEC_PROFILE="1" if blob == "eager code" else "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == good.stdout.splitlines()[1:]
    what = {"plan": "payload", "eager code": "eager code", "unit code": "unit code 0"}[blob]
    assert r.stderr.count("RuntimeWarning") == 1 and f"{what} of shop.cart is damaged" in r.stderr, r.stderr
    fallback = "compiled again from its source" if blob == "unit code" else "importing it from its source"
    assert fallback in r.stderr and "Traceback" not in r.stderr


def test_a_damaged_unit_whose_source_changed_raises_a_clear_error_and_never_runs(tmp_path, app):
    """A unit's damaged code, and a source that no longer gives it: the
    access that runs the unit gets an ImageError naming it; nothing of the
    damaged bytes runs."""
    image = build(tmp_path, "shop")
    data = bytearray(image.read_bytes())
    at = _record_field(data, "shop.cart", 32, 8)
    for k in range(int.from_bytes(data[at:at + 4], "little")):  # every unit of shop.cart
        entry = at + 8 + 24 * k
        data[int.from_bytes(data[entry:entry + 8], "little") + 5] ^= 0x55
    image.write_bytes(bytes(data))
    cart = app / "shop" / "cart.py"
    cart.write_text(cart.read_text().replace("import decimal", "import decimal, fractions"))
    (app / "probe.py").write_text("import shop.cart\ntry:\n    shop.cart.Cart\n"
                                  "except ValueError as e:\n    print(type(e).__name__, e)\n")
    r = lazyexec(tmp_path, "run", "--image", image, "probe.py", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ImageError ") and "of shop.cart is damaged" in r.stdout, r.stdout
    assert "rebuild the image" in r.stdout


def test_a_loaded_plan_holds_its_units_code_in_the_mapping_not_as_bytes(tmp_path, app):
    """Format 4: a plan's deferred units keep their marshalled code in the
    image; the loaded plan refers to it (a read-only buffer over the mapping)
    and the runtime unmarshals it when the unit first runs."""
    import marshal

    from lazyexec import _lazyexec
    from lazyexec.image import open_image

    image = build(tmp_path, "shop")
    units, _steps = open_image(image, check_runtime=False).load("shop.cart")
    # A plain function's or class's field wraps its code: ("function", code), ("class", code, bases).
    deferred = [u[0][1] if isinstance(u[0], tuple) else u[0] for u in units if u[0] is not None]
    assert deferred and all(type(c) is _lazyexec.ImageUnitCode for c in deferred)
    assert not any(isinstance(u[0], bytes) for u in units)
    cart = [marshal.loads(memoryview(c)) for c in deferred if b"Cart" in bytes(c)]
    assert [type(c).__name__ for c in cart] == ["code"] and "Cart" in (*cart[0].co_names, cart[0].co_name)


def test_a_plans_unit_table_gives_back_the_units_of_its_plan(tmp_path, app):
    """Format 6: a plan's units (where, bound names, deps, calls) are a table
    in its payload, which the runtime copies instead of unmarshalling a
    tuple per unit; Image.load gives back the plan format's units list, the
    same as the module's plan apart from the code fields (out of line)."""
    from lazyexec.config import Config
    from lazyexec.image import open_image
    from lazyexec.importer.importlib_bootstrap import load_or_build_plan

    image = build(tmp_path, "shop")
    img = open_image(image, check_runtime=False)
    for name, rel, package in (("shop.cart", "shop/cart.py", False), ("shop", "shop/__init__.py", True)):
        units, steps = img.load(name)
        plan = load_or_build_plan(str(app / rel), name, package, Config(), build="inline")
        assert [tuple(u[1:]) for u in units] == [(tuple(b), list(d), w, list(c)) for _, b, d, w, c in plan.units]
        assert [u[0] is None for u in units] == [u[0] is None for u in plan.units]
        assert len(steps) == len(plan.steps)


def test_reload_and_a_renamed_module_behave_as_eagerly(tmp_path, app):
    """importlib.reload of a served plan and eager module runs them again;
    a loader asked to run a module under another name refuses it, as the
    eager SourceFileLoader does (never another served module's code)."""
    (app / "reload_probe.py").write_text(
        "import importlib, importlib.util, lazyexec, shop, shop.util\n"
        "print(shop.version(), shop.util.BANNER)\n"
        "importlib.reload(shop); importlib.reload(shop.util)\n"
        "print(shop.version(), shop.util.BANNER)\n"
        "spec = importlib.util.find_spec('shop.util')\n"
        "m = importlib.util.module_from_spec(spec); m.__name__ = 'shop.cart'\n"
        "try:\n    spec.loader.exec_module(m)\nexcept ImportError as e:\n    print('ImportError', e)\n"
        "print(spec.loader.get_code('shop.util').co_filename == spec.origin)\n"
        "try:\n    spec.loader.get_code('shop.cart')\nexcept ImportError as e:\n    print('ImportError', e)\n")
    image = build(tmp_path, "shop")
    eager = subprocess.run([sys.executable, "reload_probe.py"], cwd=app, env=env(tmp_path), capture_output=True,
                           text=True)
    r = lazyexec(tmp_path, "run", "--image", image, "reload_probe.py")
    assert eager.returncode == 0 and (r.stdout, r.stderr) == (eager.stdout, eager.stderr)
    assert r.stdout.count("ImportError loader for shop.util cannot handle shop.cart") == 2


BOOT_PROBE = (
    "import sys, _imp\n"
    "ext = _imp.create_dynamic(type(sys.implementation)(name='lazyexec._lazyexec', origin=sys.argv[1]))\n"
    "if sys.argv[3:] == ['two-steps']:\n"
    "    image = ext.image_boot_open(sys.argv[2])\n"
    "    finder = ext.image_boot_install(image) if image is not None else None\n"
    "else:\n"
    "    finder = ext.image_boot(sys.argv[2])\n"
    "print(type(finder).__name__, [type(f).__name__ for f in sys.meta_path].count('ImageFinder'))\n"
    "if finder is not None:\n"
    "    print([type(f).__name__ for f in sys.meta_path][sys.meta_path.index(finder) + 1:][:2])\n"
    "import shop, shop.cart, shop.util\n"
    "print(sorted(m for m in sys.modules if m.startswith('lazyexec') and m != 'lazyexec._lazyexec'))\n"
    "import lazyexec, lazyexec.image\n"
    "print('lazy cart' if lazyexec.is_pending(shop.cart, 'Cart') else 'eager cart',\n"
    "      lazyexec.image._active is finder, lazyexec.image.activate(sys.argv[2]) is finder)\n"
    "from shop.cli import main; main()\n"
    "import importlib.machinery as im\n"
    "print(type(shop.__loader__).__name__, shop.__loader__ == im.SourceFileLoader('shop', shop.__file__),\n"
    "      shop.cart.__loader__ is shop.cart.__spec__.loader, shop.cart.__package__, list(vars(shop.util))[:8])\n")


@pytest.mark.parametrize("steps", ["one-call", "two-steps"])
def test_the_image_activated_in_cpp_serves_as_the_python_activation_does_without_lazyexec_python(tmp_path, app, steps):
    """_lazyexec.image_boot (for the C++ boot, LAZYEXEC_IMAGE): no Python
    module of lazyexec's loads while served modules import, plans included;
    the finder sits where lazyexec.image.activate() puts it, the modules
    have the loader and attributes the Python activation gives, the Python
    layer adopts that finder. A damaged image is declined (None), silently:
    the Python layer activates then, and warns."""
    from lazyexec import _lazyexec

    image = build(tmp_path, "shop")
    probe = app / "boot_probe.py"
    probe.write_text(BOOT_PROBE)
    r = subprocess.run([sys.executable, str(probe), _lazyexec.__file__, str(image), steps], cwd=app,
                       env=env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["ImageFinder 1", "['type', 'type']", "[]", "lazy cart True True"]
    assert lines[4].startswith("shop 1.0 3.75 ['")
    assert lines[5] == ("ImageLoader True True shop ['__name__', '__doc__', '__package__', '__loader__', "
                        "'__spec__', '__file__', '__cached__', '__builtins__']")
    # The same attributes as the Python activation's.
    python = subprocess.run([sys.executable, "-c", "import lazyexec.image, sys; lazyexec.image.activate(sys.argv[1])\n"
                             "import shop, shop.cart, shop.util\n" + BOOT_PROBE.split("main()\n")[1],
                             str(image)], cwd=app, env=env(tmp_path), capture_output=True, text=True)
    assert python.returncode == 0, python.stderr
    assert python.stdout.splitlines()[-1] == lines[5]
    damaged = tmp_path / "damaged.lzi"
    damaged.write_bytes(_damage(image.read_bytes(), "truncated"))
    r = subprocess.run([sys.executable, str(probe), _lazyexec.__file__, str(damaged), steps], cwd=app,
                       env=env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "NoneType 0", (r.stdout, r.stderr)
    assert "lazyexec: ignoring image" in r.stderr  # said by the Python layer's activate()


def test_the_runtime_key_is_the_fingerprint_of_version_formats_and_build_identity():
    """image_runtime_key() (C++, no import of lazyexec.store at activation)
    is fingerprint("VERSION:PLAN_FORMAT:FORMAT:BUILD_IDENTITY") as the store
    computes its parts: an image built by this build is accepted, another's refused."""
    from lazyexec import __version__, _lazyexec
    from lazyexec.image import FORMAT, runtime_key
    from lazyexec.store import FORMAT as PLAN_FORMAT, _build_identity

    expected = _lazyexec.fingerprint(f"{__version__}:{PLAN_FORMAT}:{FORMAT}:{_build_identity()}").encode()
    assert runtime_key() == expected and len(expected) == 16
