"""`lazyexec why`: every module a run loaded, with the chain that caused it.

    lazyexec why [--json] [--html FILE] [--top N] -- (SCRIPT.py | -m MODULE | COMMAND) [ARGS...]
    lazyexec why [--json] [--html FILE] [--top N] --load RECORD.json

The first form runs the program as `lazyexec run` would, with the recorder on
(`LAZYEXEC_WHY`, see lazyexec/runtime/why.py); the program's own output goes
to stderr so the report (stdout) stays clean. The second explains a record
made by a program started by others (`LAZYEXEC=1 LAZYEXEC_WHY=path.json`
with the .pth activation).

Each module's cause is the innermost frame of its chain, classified as
- a top-level statement: the statement's verdict and reason from the analysis
  (for a module loaded eagerly as a whole, why it was);
- a lazy unit materialized on the first use of a name;
- a call at run time (an import inside a function);
- none of the program's frames: the interpreter or lazyexec itself.
The JSON schema is docs/why.md.
"""

from __future__ import annotations

import json
import os
import sys

from lazyexec.cli.main import fail

SCHEMA = 1
# The recorder's "eager_how" (lazyexec/runtime/why.py, Recorder.eager_how).
EAGER_HOW = {
    "no-artifact": "no artifact yet (the cold path; built in the background for the next start)",
    "profile": "the usage profile saw the program use it whole, or nearly, last time",
    "policy": "not claimed by policy (the never-lazy set, include/exclude, or no opt-in marker)",
    "nothing-to-defer": "nothing in it can be deferred (its plan is empty)",
}
USAGE = ("usage: lazyexec why [--json] [--html FILE] [--top N] -- (SCRIPT.py | -m MODULE | COMMAND) [ARGS...]\n"
         "       lazyexec why [--json] [--html FILE] [--top N] --load RECORD.json")


def run(argv: list[str]) -> int:
    opts = {"json": False, "html": None, "top": 15, "load": None}
    cmd: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            cmd = argv[i + 1:]
            break
        if a in ("-h", "--help"):
            print(USAGE)
            return 0
        if a == "--json":
            opts["json"] = True
        elif a in ("--html", "--top", "--load"):
            if i + 1 >= len(argv):
                return fail(f"{a} needs a value")
            opts[a[2:]] = argv[i + 1]
            i += 1
        else:
            cmd = argv[i:]  # the program starts at the first word that is no option of ours
            break
        i += 1
    try:
        top = int(opts["top"])
    except ValueError:
        return fail("--top needs a number")
    if opts["load"]:
        if cmd:
            return fail("--load takes no command")
        path = opts["load"]
        status = 0
    elif cmd:
        path, status = record(cmd)
        if path is None:
            return status
    else:
        return fail(USAGE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        return fail(f"cannot read the record {path}: {e}")
    finally:
        if not opts["load"]:
            try:
                os.unlink(path)
            except OSError:
                pass
    if not isinstance(data, dict) or data.get("schema") != 1 or not isinstance(data.get("modules"), list):
        return fail(f"{path}: not a lazyexec why record (schema 1)")
    report = explain(data)
    if opts["html"]:
        try:
            with open(opts["html"], "w", encoding="utf-8") as f:
                f.write(html(report))
        except OSError as e:
            return fail(f"cannot write {opts['html']}: {e}")
    if opts["json"]:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_text(report, top)
        if opts["html"]:
            print(f"\npicture: {opts['html']}")
    return status


def record(cmd: list[str]) -> tuple[str | None, int]:
    """Run `lazyexec run CMD` with the recorder on; (record path, exit status)."""
    import subprocess
    import tempfile

    fd, path = tempfile.mkstemp(prefix="lazyexec-why-", suffix=".json")
    os.close(fd)
    env = dict(os.environ, LAZYEXEC_WHY=path)
    env.pop("LAZYEXEC", None)  # the .pth line must not activate a second time (activate() is idempotent anyway)
    try:
        proc = subprocess.run([sys.executable, "-m", "lazyexec", "run", *cmd], env=env, stdout=sys.stderr)
    except OSError as e:
        os.unlink(path)
        return None, fail(f"cannot run {cmd[0]}: {e}")
    if os.path.getsize(path) == 0:
        os.unlink(path)
        return None, fail(f"{cmd[0]} exited ({proc.returncode}) without writing a record "
                          "(it ended through os._exit, or lazyexec was off: LAZYEXEC=0?)")
    return path, proc.returncode


# -- explanation -------------------------------------------------------------

class _Analyses:
    """The analysis of each file a chain names, once."""

    def __init__(self):
        from lazyexec import config as config_mod

        try:
            self.config = config_mod.load()
        except config_mod.ConfigError:
            self.config = None
        self.cache: dict = {}

    def of(self, filename: str, module: str | None):
        if filename in self.cache:
            return self.cache[filename]
        result = None
        if filename and filename.endswith(".py") and os.path.isfile(filename):
            from lazyexec import _lazyexec
            from lazyexec.analyze import knowledge

            try:
                with open(filename, "rb") as f:
                    source = f.read()
                is_package = os.path.basename(filename) == "__init__.py"
                name = module or "__main__"
                result = _lazyexec.analyze(source, filename, knowledge(self.config), name, is_package)
                if not result.get("module_eager") and name != "__main__":
                    # The knowledge the build used (other modules' summaries,
                    # imports kept eager for their effects), so verdicts and
                    # forces are the artifact's.
                    from lazyexec.analyze import build_knowledge, explain_effects

                    kb, effects, _ = build_knowledge(result["units"], filename, name, is_package, self.config)
                    if kb is not None:
                        result = _lazyexec.analyze(source, filename, kb, name, is_package)
                        explain_effects(result, effects)
            except (SyntaxError, ValueError, OSError):
                result = None
        self.cache[filename] = result
        return result

    def forced_by(self, filename: str, module: str | None, unit: str):
        """The eager unit a stable-inputs force step runs `unit` before
        ("LINE (KIND NAMES)", the runtime's name of a lazy unit), or None."""
        result = self.of(filename, module)
        if not result:
            return None
        line, _, rest = (unit or "").partition(" ")
        kind, _, names = rest.strip("()").partition(" ")
        units = result["units"]
        ids = {u["id"] for u in units if str(u["line"]) == line and u["kind"] == kind
               and ", ".join(u["binds"]) == names}
        for f in result.get("forces", ()):
            if ids & set(f["units"]) and 0 <= f["before"] < len(units):
                return units[f["before"]]
        # The compile stage also runs, just before an eager statement, the
        # lazy units binding what it reads when it runs (a class body reads
        # globals without the trap): the first eager statement after the
        # unit reading a name it binds.
        binds = {b for u in units if u["id"] in ids for b in u["binds"]}
        first = min(ids, default=None)
        for u in units:
            if first is not None and u["id"] > first and u["verdict"] == "eager" \
                    and binds & set(u.get("def_reads", ())):
                return u
        return None

    def unit_at(self, filename: str, module: str | None, line: int):
        result = self.of(filename, module)
        if not result:
            return result, None
        best = None
        for u in result["units"]:
            if u["line"] <= line and (best is None or u["line"] >= best["line"]):
                best = u
        return result, best


def _frame_text(fr: dict) -> str:
    where = f"{fr['file']}:{fr['line']}"
    if fr["kind"] == "unit":
        trigger = fr.get("trigger") or ""
        why = f"first use of `{trigger}`" if trigger and not trigger.startswith("(") else (trigger or "forced")
        return f"{where} lazy unit {fr.get('unit', '')} of {fr['module']} materialized: {why}"
    if fr["kind"] == "call":
        return f"{where} in {fr['function']}() (a call at run time)"
    return f"{where} top-level statement of {fr['module']}"


def cause_of(entry: dict, lazy: set, analyses: _Analyses, how: dict | None = None) -> dict:
    """The innermost frame of the chain, classified, with a reason key for the
    summary. `how`: module -> why it loaded whole (the record's "eager_how")."""
    chain = entry["chain"]
    if entry.get("by_lazyexec"):
        return {"kind": "internal", "reason": "lazyexec itself (activation, reading or building a plan)",
                "where": None}
    if not chain:
        return {"kind": "internal", "reason": "no program frame: the interpreter or a .pth file", "where": None}
    fr = chain[-1]
    where = f"{fr['file']}:{fr['line']}"
    if fr["kind"] == "unit":
        trig = fr.get("trigger") or ""
        if trig and not trig.startswith("("):
            reason = "lazy unit materialized on first use of a name"
        elif trig:
            reason = "lazy unit materialized: read when another lazy unit is defined"
        else:
            reason = "lazy unit materialized by a plan step (forced before an eager statement, settling, materialize_all)"
        out = {"kind": "unit", "reason": reason, "where": where, "module": fr["module"],
               "unit": fr.get("unit"), "trigger": trig,
               "message": f"lazy unit {fr.get('unit', '')} of {fr['module']}: " +
                          (f"first use of `{trig}`" if trig and not trig.startswith("(") else
                           trig or "run by a plan step (a stable-inputs force, settling or materialize_all)")}
        if not trig:
            # Which eager statement the force step ran it before: the
            # statement that really pulled the module in (rule 4).
            before = analyses.forced_by(fr["file"], fr["module"], fr.get("unit") or "")
            if before is not None:
                out["reason"] = f"lazy unit forced before an eager statement: {before['reason']}"
                out["forced_before"] = {"line": before["line"], "code": before["reason"],
                                        "message": before["message"]}
                out["message"] = (f"lazy unit {fr.get('unit', '')} of {fr['module']}: forced before the eager "
                                  f"statement at line {before['line']} ({before['message']})")
        return out
    if fr["kind"] == "call":
        return {"kind": "call", "reason": "a call at run time (an import inside a function)", "where": where,
                "module": fr["module"], "function": fr["function"]}
    module = fr["module"]
    if module == "site" and fr["file"].startswith("<"):
        return {"kind": "top", "where": where, "module": module,
                "reason": "a .pth file's import line (site, at interpreter start-up)"}
    result, unit = analyses.unit_at(fr["file"], module, fr["line"])
    out = {"kind": "top", "where": where, "module": module}
    if unit is not None:
        out["statement"] = unit.get("source") or ""
        out["verdict"] = unit["verdict"]
        out["code"] = unit["reason"]
        out["message"] = unit["message"]
    if module == "__main__":
        out["reason"] = "the program's main script (runs eagerly)"
    elif module in lazy:
        out["reason"] = f"eager statement: {unit['reason'] if unit else 'unknown'}"
    elif result is not None and result.get("module_eager") and module not in lazy:
        out["reason"] = f"module eager as a whole: {result['module_reason']}"
        out["message"] = result["module_message"]
    elif result is not None and not any(u["verdict"] == "lazy" for u in result["units"]):
        out["reason"] = "module eager as a whole: nothing in it can be deferred"
    elif result is not None and EAGER_HOW.get((how or {}).get(module)):
        out["reason"] = f"module loaded eagerly: {EAGER_HOW[how[module]]}"
    elif result is not None:
        out["reason"] = ("module loaded eagerly (no artifact yet, the usage profile saw it used whole last time, "
                         "or not claimed by policy)")
    else:
        out["reason"] = "module loaded eagerly (no Python source to analyse)"
    if module not in lazy and module != "__main__" and "message" in out and not out["reason"].startswith("module eager"):
        out["message"] = out["reason"]
    elif module not in lazy and module != "__main__" and out["reason"].startswith("module eager") and not result:
        out["message"] = out["reason"]
    return out


def explain(data: dict) -> dict:
    lazy = set(data.get("lazy", ()))
    analyses = _Analyses()
    modules = data["modules"]
    by_name = {m["module"]: m for m in modules}
    how = {m["module"]: m["eager_how"] for m in modules if m.get("eager_how")}
    children: dict[str | None, list[str]] = {}
    for m in modules:
        children.setdefault(m.get("within"), []).append(m["module"])

    def subtree(name: str) -> int:
        return 1 + sum(subtree(c) for c in children.get(name, ()))

    rows = []
    for m in modules:
        inner = sum(by_name[c].get("seconds", 0.0) for c in children.get(m["module"], ()))
        cause = cause_of(m, lazy, analyses, how)
        rows.append({
            "module": m["module"], "file": m.get("file"), "lazy": m["module"] in lazy,
            "seconds": m.get("seconds", 0.0), "self_seconds": max(0.0, m.get("seconds", 0.0) - inner),
            "within": m.get("within"), "subtree": subtree(m["module"]), "cause": cause,
            "chain": [_frame_text(fr) for fr in m["chain"]],
            **({"failed": m["failed"]} if m.get("failed") else {}),
        })
    by_reason: dict[str, dict] = {}
    by_cause: dict[str, dict] = {}
    by_module: dict[str, dict] = {}
    for r in rows:
        c = r["cause"]
        s = by_reason.setdefault(c["reason"], {"reason": c["reason"], "modules": 0, "seconds": 0.0})
        s["modules"] += 1
        s["seconds"] += r["self_seconds"]
        key = (c["where"] or "(no program frame)", c.get("module"))  # `-c` code and .pth lines are both <string>:1
        t = by_cause.setdefault(key, {"where": key[0], "kind": c["kind"], "reason": c["reason"],
                                      "message": c.get("message") or "",
                                      "statement": c.get("statement", ""), "loads": [], "modules": 0,
                                      "seconds": 0.0})
        t["loads"].append(r["module"])
        if r["within"] is None or by_name.get(r["within"]) is None or \
                cause_of(by_name[r["within"]], lazy, analyses, how)["where"] != c["where"]:  # not nested in its own cause
            t["modules"] += r["subtree"]
            t["seconds"] += r["seconds"]
        owner = c.get("module") or "(none)"
        u = by_module.setdefault(owner, {"module": owner, "modules": 0, "seconds": 0.0})
        u["modules"] += 1
        u["seconds"] += r["seconds"]
    return {
        "schema": SCHEMA,
        "argv": data.get("argv"),
        "python": data.get("python"),
        "seconds": data.get("seconds"),
        "preloaded": len(data.get("preloaded", ())),
        "loaded": len(rows),
        "lazy": sum(1 for r in rows if r["lazy"]),
        "modules": rows,
        "by_reason": sorted(by_reason.values(), key=lambda s: -s["modules"]),
        "by_cause": sorted(by_cause.values(), key=lambda s: (-s["modules"], -s["seconds"])),
        "by_module": sorted(by_module.values(), key=lambda s: (-s["modules"], -s["seconds"])),
    }


# -- output ------------------------------------------------------------------

def print_text(report: dict, top: int) -> None:
    print(f"{report['loaded']} modules loaded during the run ({report['lazy']} lazily), "
          f"{report['preloaded']} before it; {report['seconds'] * 1000:.1f} ms recorded")
    print()
    print("By reason (the innermost cause of each load; self time):")
    for s in report["by_reason"]:
        print(f"  {s['modules']:>5}  {s['seconds'] * 1000:>8.1f} ms  {s['reason']}")
    print()
    print(f"Top {top} causes (modules each pulled in, with what they imported; inclusive time):")
    for s in report["by_cause"][:top]:
        loads = ", ".join(s["loads"][:6]) + (", ..." if len(s["loads"]) > 6 else "")
        print(f"  {s['modules']:>5}  {s['seconds'] * 1000:>8.1f} ms  {s['where']}")
        if s["statement"]:
            print(f"{'':23}{s['statement']}")
        print(f"{'':23}{s['message'] or s['reason']}")
        print(f"{'':23}loads {loads}")
    print()
    print(f"Top {top} importing modules (modules they imported directly; inclusive time):")
    for s in report["by_module"][:top]:
        print(f"  {s['module'] and s['module']:<50} {s['modules']:>5}  {s['seconds'] * 1000:>8.1f} ms")
    print()
    print("Every module, in load order, with its chain (root first):")
    for r in report["modules"]:
        mode = "lazy" if r["lazy"] else "eager"
        print(f"- {r['module']} [{mode}] {r['seconds'] * 1000:.2f} ms ({r['self_seconds'] * 1000:.2f} self)"
              f"{' FAILED ' + r['failed'] if r.get('failed') else ''}")
        for text in r["chain"]:
            print(f"    {text}")
        c = r["cause"]
        print(f"    => {c.get('message') or c['reason']}")


def html(report: dict) -> str:
    """An icicle-like tree of who imported whom (inclusive time), one
    self-contained page: <details> elements, no script, no dependency."""
    from html import escape

    rows = report["modules"]
    kids: dict = {}
    for r in rows:
        kids.setdefault(r["within"], []).append(r)
    total = sum(r["seconds"] for r in kids.get(None, ())) or 1e-9

    def node(r: dict) -> str:
        c = r["cause"]
        pct = 100.0 * r["seconds"] / total
        label = (f"<span class=bar style='width:{max(pct, 0.3):.1f}%'></span>"
                 f"<b>{escape(r['module'])}</b> {'lazy' if r['lazy'] else 'eager'} "
                 f"{r['seconds'] * 1000:.2f} ms ({r['subtree']} modules)")
        detail = escape(c.get("message") or c["reason"])
        where = escape(c["where"] or "")
        inner = "".join(node(k) for k in kids.get(r["module"], ()))
        body = f"<div class=why>{where} {escape(c.get('statement', ''))}<br>{detail}</div>{inner}"
        return f"<details><summary>{label}</summary>{body}</details>" if inner else \
            f"<details class=leaf><summary>{label}</summary>{body}</details>"

    reasons = "".join(f"<tr><td>{s['modules']}</td><td>{s['seconds'] * 1000:.1f} ms</td>"
                      f"<td>{escape(s['reason'])}</td></tr>" for s in report["by_reason"])
    tree = "".join(node(r) for r in kids.get(None, ()))
    title = escape(" ".join(report.get("argv") or []))
    return f"""<!doctype html><meta charset=utf-8><title>lazyexec why: {title}</title>
<style>body{{font:13px sans-serif}} details{{margin-left:1.2em}} summary{{cursor:pointer;position:relative}}
.bar{{display:inline-block;height:.8em;background:#e8a33d;margin-right:.4em;max-width:40%}}
.why{{color:#555;margin:0 0 .3em 1.2em;font-size:12px}} .leaf summary{{color:#333}} td{{padding:0 .6em}}</style>
<h1>lazyexec why</h1><p>{title}<br>{report['loaded']} modules loaded ({report['lazy']} lazily),
{report['preloaded']} before the run.</p><h2>By reason</h2><table>{reasons}</table>
<h2>Who imported whom</h2>{tree}
"""
