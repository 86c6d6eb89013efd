"""Reader for tests/analyze/cases.txt (format described at the top of that file)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

CASES = Path(__file__).with_name("cases.txt")
COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


@dataclass
class Case:
    name: str
    source: str
    expected: list[tuple[int, str, str]]
    forces: list[tuple[int, list[int]]]
    views: list[int] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    disabled: bool = False
    line: int = 0

    @property
    def runnable(self) -> bool:
        need = self.options.get("min")
        if need and sys.version_info < tuple(int(p) for p in need.split(".")):
            return False
        return not self.disabled

    def source_bytes(self) -> bytes:
        """Encoded as the case's own coding cookie says, as a file on disk would be."""
        raw = self.source.encode("utf-8")
        for line in raw.splitlines()[:2]:
            m = COOKIE.match(line)
            if m:
                return self.source.encode(m.group(1).decode())
        return raw


def load(path: Path = CASES) -> list[Case]:
    cases: list[Case] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("=== "):
            i += 1
            continue
        header = line[4:].split()
        name, opts = header[0], header[1:]
        options: dict = {}
        disabled = False
        for o in opts:
            if o == "disabled":
                disabled = True
            elif "=" in o:
                k, v = o.split("=", 1)
                options.setdefault(k, []).append(v) if k in ("pure", "pure_bases", "never") else options.__setitem__(k, v)
            else:
                options[o] = True
        start = i + 1
        j = start
        while j < len(lines) and lines[j] != "---":
            j += 1
        source = "\n".join(lines[start:j]) + "\n"
        expected, forces, views = [], [], []
        k = j + 1
        while k < len(lines) and not lines[k].startswith("=== "):
            text = lines[k].strip()
            if text.startswith("force "):
                before, _, after = text[len("force "):].partition(":")
                forces.append((int(before), [int(x) for x in after.split()]))
            elif text.startswith("own-views "):
                views.extend(int(x) for x in text[len("own-views "):].split())
            elif text and not text.startswith("#"):
                ln, verdict, reason = text.split()
                expected.append((int(ln), verdict, reason))
            k += 1
        cases.append(Case(name, source, expected, forces, views, options, disabled, i + 1))
        i = k
    return cases
