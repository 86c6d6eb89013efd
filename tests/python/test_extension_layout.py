"""The full extension's layout (CMakeLists.txt, src/native/hot_text.ld,
src/native/rodata_first.ld): the warm start's code first, its read-only
data right after it, the rest of the code behind both, so that a warm
process maps the front of the file and not pages spread over all of it."""
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import lazyexec._lazyexec as full


def section_headers(data: bytes) -> list[tuple]:
    """(name offset, type, flags, address, offset, size, link) of each
    section of an ELF64 file."""
    assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 file"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    return [struct.unpack_from("<IIQQQQI", data, shoff + i * shentsize) for i in range(shnum)]


def c_string(data: bytes, at: int) -> str:
    return data[at:data.index(b"\0", at)].decode()


def sections(data: bytes) -> list[tuple[str, int, int]]:
    """(name, address, size) of each section, in file order."""
    headers = section_headers(data)
    shstrndx, = struct.unpack_from("<H", data, 0x3E)
    names_at = headers[shstrndx][4]
    return [(c_string(data, names_at + n), addr, size) for n, _k, _f, addr, _o, size, _l in headers]


def exported_address(data: bytes, symbol: str) -> int:
    headers = section_headers(data)
    for _n, kind, _f, _a, off, size, link in headers:
        if kind == 11:  # SHT_DYNSYM: 24-byte entries, names in the linked string table
            strings = headers[link][4]
            for at in range(off, off + size, 24):
                st_name, = struct.unpack_from("<I", data, at)
                if c_string(data, strings + st_name) == symbol:
                    return struct.unpack_from("<Q", data, at + 8)[0]
    raise AssertionError(f"{symbol} is not exported")


def extension_bytes() -> bytes:
    data = Path(full.__file__).read_bytes()
    if b"clang version" in data:  # its .comment section names the compiler
        pytest.skip("built by clang: the layout scripts are applied to GCC builds only (CMakeLists.txt)")
    return data


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the layout scripts are GNU ld's, on ELF")
def test_warm_code_then_read_only_data_then_the_rest():
    data = extension_bytes()
    found = sections(data)
    names = [s[0] for s in found]
    assert ".text.lazyexec_warm" in names, "hot_text.ld was not applied"
    warm = names.index(".text.lazyexec_warm")
    # Read-only data and the unload code directly behind the warm code,
    # before the rest of it.
    assert names[warm + 1:warm + 4] == [".fini.lazyexec_first", ".rodata.lazyexec_first", ".text"], names[warm:]
    assert ".rodata" not in names and ".fini" not in names, "left behind the code"
    # The entry point every load runs is in the warm section.
    _, start, size = found[warm]
    assert start <= exported_address(data, "PyInit__lazyexec") < start + size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the layout scripts are GNU ld's, on ELF")
def test_the_cold_code_gets_a_mapping_of_its_own():
    """keep_cold_code_apart (module.cpp): after loading, the code segment is
    mapped as the warm front and the rest, split where the front ends."""
    path = Path(full.__file__)
    data = extension_bytes()
    found = dict((name, (addr, size)) for name, addr, size in sections(data))
    addr, size = found[".rodata.lazyexec_first"]
    page = os.sysconf("SC_PAGE_SIZE")
    front_end = (addr + size + page - 1) // page * page
    out = subprocess.run([sys.executable, "-c", "import lazyexec._lazyexec, sys; sys.stdout.write(open('/proc/self/maps').read())"],
                         capture_output=True, text=True, check=True, env={**os.environ, "LAZYEXEC": "0"}).stdout
    code = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 6 and os.path.realpath(fields[5]) == os.path.realpath(path) and "x" in fields[1]:
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            code.append((int(fields[2], 16), hi - lo))
    assert [offset for offset, _ in code] == [0, front_end], code


def test_the_image_loaders_warm_path_is_in_the_hot_text_list():
    """tools/hot_text.py profiles a program served from an image that runs
    its main module from the image (runpy asks the loader's get_code) and,
    once the usage profile has learned, loads modules whole from their
    eager code: those functions are laid out with the warm code. Before,
    they ran in the cold code, and test_bisect from its image kept four
    64 KiB windows of it resident (docs/image-format.md, ninth pass)."""
    listed = (Path(__file__).resolve().parents[2] / "src" / "native" / "hot_text.ld").read_text()
    for mangled in ("15loader_get_codeEP7_object", "11module_codeEPNS1_12FinderObject", "4View4codeERKNS0_6Module"):
        assert mangled in listed, f"{mangled} is not in hot_text.ld: regenerate it with tools/hot_text.py"


def test_hot_text_merge_keeps_every_listed_function(tmp_path):
    """tools/hot_text.py --merge: the union of lists it wrote, without
    profiling. The list in use merged with itself is the same file; merged
    with another, it gains that list's functions and loses none."""
    root = Path(__file__).resolve().parents[2]
    listed = root / "src" / "native" / "hot_text.ld"
    tool = [sys.executable, str(root / "tools" / "hot_text.py")]
    same = tmp_path / "same.ld"
    subprocess.run([*tool, "--merge", str(listed), "--output", str(same)], check=True, capture_output=True)
    assert same.read_text() == listed.read_text()
    other = tmp_path / "other.ld"
    other.write_text(listed.read_text().replace("    *crtbeginS.o", "    *(.text._ZN8lazyexec3newEv .text.startup._ZN8lazyexec3newEv)\n    *crtbeginS.o", 1))
    merged = tmp_path / "merged.ld"
    subprocess.run([*tool, "--merge", str(listed), "--merge", str(other), "--output", str(merged)], check=True,
                   capture_output=True)
    lines = set(merged.read_text().splitlines())
    assert set(listed.read_text().splitlines()) <= lines
    assert "    *(.text._ZN8lazyexec3newEv .text.startup._ZN8lazyexec3newEv)" in lines
