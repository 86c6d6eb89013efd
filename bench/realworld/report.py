"""results.json -> results.md (tables) and PNG charts (time and peak-RSS
ratios to eager, per workload and mode). Also runnable alone:

    python bench/realworld/report.py RESULTS_DIR
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ENV_TITLES = {
    "warm": "artifacts warm (.pyc and lazyexec artifacts present)",
    "nobytecode": "PYTHONDONTWRITEBYTECODE=1 (warm .pyc and artifacts from earlier runs, nothing written)",
    "first": "first start (every lazyexec artifact and cache removed before each lazyexec run; "
             "\"builder\": median seconds the detached artifact builder ran after the program exited, "
             "waited for before the next run)",
    "first-nobytecode": "first start under PYTHONDONTWRITEBYTECODE=1 (as \"first\"; artifacts go to the cache "
                        "directory only, as for a read-only site-packages)",
}


def failures(results: dict) -> list[tuple[str, str, str, str]]:
    out, seen = [], set()
    for env, e in results["envs"].items():
        for w, modes in e["workloads"].items():
            for m, r in modes.items():
                if r["status"] == "unavailable":
                    if (env, m) not in seen:  # once per mode, not per workload
                        seen.add((env, m))
                        out.append((env, "every workload", m, r["detail"]))
                elif r["status"] != "ok":
                    out.append((env, w, m, r["detail"] or r["status"]))
    return out


def _cell(r: dict, probe: dict | None) -> str:
    if r["status"] == "unavailable":
        return "n/a (activation fails)"
    if r["status"] != "ok":
        return f"**FAIL ({r['status']})**"
    t, rss = r["ratio"]["wall"], r["ratio"]["rss_kib"]
    s = f"{t['median']:.2f} ({t['q1']:.2f}–{t['q3']:.2f}) / {rss['median']:.2f}"
    if probe and probe.get("modules") is not None:
        s += f" / {probe['modules']}"
    if r.get("builder_s"):
        s += f" / builder {statistics.median(r['builder_s']):.1f} s"
    return s


def medians_by_mode(env: dict) -> dict:
    out = {}
    for m in env["modes"]:
        if m == "eager":
            continue
        t = [w[m]["ratio"]["wall"]["median"] for w in env["workloads"].values() if w[m]["status"] == "ok"]
        rss = [w[m]["ratio"]["rss_kib"]["median"] for w in env["workloads"].values() if w[m]["status"] == "ok"]
        cpu = [w[m]["ratio"]["cpu"]["median"] for w in env["workloads"].values() if w[m]["status"] == "ok"]
        fails = sum(1 for w in env["workloads"].values() if w[m]["status"] != "ok")
        out[m] = {"time": statistics.median(t) if t else None, "rss": statistics.median(rss) if rss else None,
                  "cpu": statistics.median(cpu) if cpu else None, "ok": len(t), "failed": fails}
    return out


def markdown(results: dict) -> str:
    mc = results["machine"]
    lines = [
        f"# Real programs: eager vs lazyexec vs peers ({results['date']})",
        "",
        f"Machine: {mc['cpu']}, {mc['cores']} cores, {mc['memory_mib']} MiB, {mc['os']}, Linux {mc['kernel']}. "
        f"Interpreter: {mc['interpreter']}. {results['rounds']} alternating rounds after {results['warmups']} "
        f"warm-up(s) per workload; whole run {results.get('duration_s', '?')} s; lazyexec "
        f"{results.get('lazyexec_commit', '?')}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(results.get("versions", {}).items())) + ".",
        "",
        "Cells: median time ratio to eager (interquartile range of the per-round ratios) / median peak-RSS "
        "ratio / modules executed (probe run). Below 1 is better. **FAIL** = stdout or exit code differs "
        "from eager's (see Failures).",
    ]
    probe = results.get("probe", {})
    for env_name, env in results["envs"].items():
        modes = [m for m in env["modes"] if m != "eager"]
        lines += ["", f"## {ENV_TITLES.get(env_name, env_name)}", ""]
        lines.append("| workload | eager ms | eager MiB | eager modules | " + " | ".join(modes) + " |")
        lines.append("| --- | ---: | ---: | ---: |" + " --- |" * len(modes))
        for w, res in env["workloads"].items():
            e = res["eager"]
            pr = probe.get(w, {}) if env_name == "warm" else {}
            if e["status"] != "ok":
                lines.append(f"| {w} | **eager failed** | | |" + " |" * len(modes))
                continue
            emods = pr.get("eager", {}).get("modules")
            lines.append(f"| {w} | {e['median']['wall'] * 1000:.0f} | {e['median']['rss_kib'] / 1024:.1f} | "
                         f"{'' if emods is None else emods} | "
                         + " | ".join(_cell(res[m], pr.get(m)) for m in modes) + " |")
        med = medians_by_mode(env)
        lines.append("| **median over workloads** | | | | " + " | ".join(
            (f"**{med[m]['time']:.2f}** / {med[m]['rss']:.2f}" if med[m]["time"] is not None else "–")
            + (f" ({med[m]['failed']} failed)" if med[m]["failed"] else "") for m in modes) + " |")
        lines.append("| median CPU (user+sys) ratio | | | | " + " | ".join(
            f"{med[m]['cpu']:.2f}" if med[m]["cpu"] is not None else "–" for m in modes) + " |")
    if probe:
        modes = results["modes"]
        lines += ["", "## Probe: lazyexec units and system calls (one untimed run each, artifacts warm)", "",
                  "lazyexec cells: units deferred at import / materialized later / never run (lazily loaded "
                  "modules). Syscalls: file-system calls / all calls, `strace -c -f`.", ""]
        lm = [m for m in modes if m.startswith("lazyexec")]
        lines.append("| workload | " + " | ".join(f"{m} units" for m in lm) + " | "
                     + " | ".join(f"{m} syscalls" for m in modes) + " |")
        lines.append("| --- |" + " ---: |" * (len(lm) + len(modes)))
        for w, pm in probe.items():
            cells = []
            for m in lm:
                u = (pm.get(m) or {}).get("units")
                cells.append(f"{u['deferred']} / {u['materialized']} / {u['never_used']} ({u['lazy_modules']})"
                             if u else "–")
            for m in modes:
                sc = (pm.get(m) or {}).get("syscalls")
                cells.append(f"{sc['fs']} / {sc['total']}" if sc else "–")
            lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines += behind_section(results)
    fails = failures(results)
    if fails:
        lines += ["", "## Failures", ""]
        for env, w, m, detail in fails:
            lines += [f"- **{w}**, {m}, {env}:", "", "  ```", *("  " + x for x in detail.splitlines()[:26]), "  ```"]
    return "\n".join(lines) + "\n"


def behind_section(results: dict, whole: str = "lazyexec .pth") -> list[str]:
    """Workloads (artifacts warm) where lazyexec's whole-program mode is not
    ahead of every mode that passed the guard, with the probe's facts side by
    side: modules executed, file-system calls, lazyexec's units."""
    env = results["envs"].get("warm")
    probe = results.get("probe", {})
    if not env or whole not in env["modes"]:
        return []
    rows = []
    for w, res in env["workloads"].items():
        if res[whole]["status"] != "ok":
            continue
        mine = res[whole]["ratio"]["wall"]["median"]
        better = sorted(((res[m]["ratio"]["wall"]["median"], m) for m in env["modes"]
                         if m not in ("eager", whole) and res[m]["status"] == "ok"
                         and res[m]["ratio"]["wall"]["median"] < mine))
        if mine >= 1.0:
            better.insert(0, (1.0, "eager"))
        if not better:
            continue
        pw = probe.get(w, {})

        def facts(m):
            p = pw.get(m) or {}
            sc = (p.get("syscalls") or {}).get("fs", "–")
            u = p.get("units")
            us = f"; units {u['deferred']} deferred / {u['materialized']} run later / {u['never_used']} never, " \
                 f"{u['ms']:.0f} ms unit time" if u else ""
            return f"{p.get('modules', '–')} modules, {sc} fs calls{us}"

        rows.append(f"- **{w}**: {whole} {mine:.2f} ({facts(whole)}); ahead: " + "; ".join(
            f"{m} {r:.2f} ({facts(m)})" for r, m in better))
    if not rows:
        return []
    return ["", f"## Where {whole} (whole program) is not ahead (artifacts warm)", "",
            "Time ratios are medians (the interquartile ranges are in the tables: a lead smaller than them is "
            "noise). Probe facts per mode (one untimed run): modules executed, file-system calls, and for "
            "lazyexec the units deferred at import, run later, never run, and the unit time LAZYEXEC_STATS "
            "reports (summed over modules; a unit that imports counts its imports too).", "", *rows]


def charts(results: dict, out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no charts", file=sys.stderr)
        return []
    written = []
    env_name = "warm" if "warm" in results["envs"] else next(iter(results["envs"]))
    env = results["envs"][env_name]
    modes = [m for m in env["modes"] if m != "eager"]
    workloads = list(env["workloads"])
    for metric, title, fname in (("wall", "wall time", "time"), ("rss_kib", "peak RSS", "rss")):
        fig, ax = plt.subplots(figsize=(12, 0.42 * len(workloads) * len(modes) / 3 + 2))
        height = 0.8 / len(modes)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, m in enumerate(modes):
            ys, xs, lo, hi, fy = [], [], [], [], []
            for i, w in enumerate(workloads):
                y = len(workloads) - 1 - i + (len(modes) / 2 - j - 0.5) * height
                r = env["workloads"][w][m]
                if r["status"] != "ok":
                    fy.append((y, "n/a" if r["status"] == "unavailable" else "FAIL"))
                    continue
                q = r["ratio"][metric]
                ys.append(y)
                xs.append(q["median"])
                lo.append(q["median"] - q["q1"])
                hi.append(q["q3"] - q["median"])
            ax.barh(ys, xs, height=height, xerr=[lo, hi], color=colors[j % len(colors)], label=m,
                    error_kw={"elinewidth": 0.8, "capsize": 1.5})
            if fy:
                ax.scatter([0.02] * len(fy), [y for y, _ in fy], marker="x", color="red", s=28, zorder=3,
                           label="failed (output differs) or n/a")
                for y, what in fy:
                    ax.text(0.05, y, f"{m}: {what}", color="red", fontsize=7, va="center")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(workloads)))
        ax.set_yticklabels(list(reversed(workloads)))
        ax.set_xlabel(f"{title} / eager (median of per-round ratios, bars: interquartile range); below 1 is better")
        ax.set_title(f"{title} ratio to eager, {env_name}: {results['machine']['interpreter'].split(':')[0]} "
                     f"Python {results['machine']['interpreter'].split()[1]}, {results['date']}")
        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for h, l in zip(handles, labels):
            seen.setdefault(l, h)
        ax.legend(seen.values(), seen.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{fname}-ratio.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


README_START = "<!-- bench:realworld:start (bench/realworld/report.py --readme) -->"
README_END = "<!-- bench:realworld:end -->"


def readme_section(results: dict, rel_dir: str) -> str:
    """The README's performance block: the warm table (time / RSS ratios),
    the medians of every environment, the charts."""
    mc = results["machine"]
    env = results["envs"].get("warm") or next(iter(results["envs"].values()))
    modes = [m for m in env["modes"] if m != "eager"]
    lines = [
        README_START,
        f"Measured {results['date']} on {mc['cpu']} ({mc['cores']} cores, {mc['memory_mib'] // 1024} GiB), "
        f"{mc['os']}, Debian's Python {mc['interpreter'].split()[1]}; {results['rounds']} alternating rounds "
        f"after {results['warmups']} warm-ups, artifacts warm. Cells: median time ratio to eager / median peak-RSS "
        "ratio (below 1 is better); **FAIL**: the output or exit code differs from eager's.",
        "",
        "| workload | eager | " + " | ".join(modes) + " |",
        "| --- | ---: |" + " --- |" * len(modes),
    ]
    for w, res in env["workloads"].items():
        e = res["eager"]
        if e["status"] != "ok":
            continue
        cells = []
        for m in modes:
            r = res[m]
            if r["status"] == "unavailable":
                cells.append("n/a")
            elif r["status"] != "ok":
                cells.append(f"**FAIL** ({r['status']})")
            else:
                cells.append(f"{r['ratio']['wall']['median']:.2f} / {r['ratio']['rss_kib']['median']:.2f}")
        lines.append(f"| {w} | {e['median']['wall'] * 1000:.0f} ms | " + " | ".join(cells) + " |")
    for env_name, e in results["envs"].items():
        med = medians_by_mode(e)
        ms = [m for m in e["modes"] if m != "eager"]
        label = {"warm": "median, warm", "nobytecode": "median, PYTHONDONTWRITEBYTECODE=1",
                 "first": "median, first start",
                 "first-nobytecode": "median, first start, PYTHONDONTWRITEBYTECODE=1"}.get(env_name, env_name)
        lines.append(f"| **{label}** | | " + " | ".join(
            ((f"**{med[m]['time']:.2f}** / {med[m]['rss']:.2f}" if med[m]["time"] is not None else "–")
             + (f" ({med[m]['failed']} failed)" if med[m]["failed"] else "")) if m in med else ""
            for m in modes) + " |")
    lines += instructions_section(results.get("instructions"))
    lines += [
        "",
        f"![time ratio per workload and mode]({rel_dir}/time-ratio.png)",
        f"![peak RSS ratio per workload and mode]({rel_dir}/rss-ratio.png)",
        "",
        f"All figures, the spread, modules executed, lazyexec's unit counts, system calls and every failure's "
        f"diff: [{rel_dir}/results.md]({rel_dir}/results.md); method: "
        "[docs/benchmarks.md](docs/benchmarks.md).",
        README_END,
    ]
    return "\n".join(lines)


def instructions_section(counts: dict | None) -> list[str]:
    """The instruction counts of instructions.py --json (`make
    bench-instructions`), when present: valgrind's count does not drift
    with the machine's load as the wall-time ratios above do."""
    if not counts or not counts.get("workloads"):
        return []
    modes = counts["modes"]
    how = ("fresh artifacts and usage profile learnt per workload and mode, private bytecode caches, "
           "PYTHONHASHSEED=0" if counts.get("fresh") else "artifacts warm")
    lines = [
        "",
        f"Instructions executed (valgrind's callgrind; one counted run per mode, {how}), measured "
        f"{counts['date']} at {counts['lazyexec_commit']} on {counts['interpreter']}: lazy / eager, below 1 is "
        "better; the same on a busy machine as on an idle one.",
        "",
        "| workload | eager | " + " | ".join(modes) + " |",
        "| --- | ---: |" + " ---: |" * len(modes),
    ]
    ratios: dict = {m: [] for m in modes}
    for w, row in counts["workloads"].items():
        cells = []
        for m in modes:
            r = row[m]
            ratios[m].append(r["ratio"])
            cells.append(f"{r['ratio']:.3f}" + (" (**output differs**)" if r.get("output_differs") else ""))
        lines.append(f"| {w} | {row['eager'] / 1e6:.1f} M | " + " | ".join(cells) + " |")
    lines.append("| **median** | | " + " | ".join(f"**{statistics.median(ratios[m]):.3f}**" for m in modes) + " |")
    return lines


def update_readme(readme: Path, results: dict, rel_dir: str) -> None:
    text = readme.read_text()
    block = readme_section(results, rel_dir)
    if README_START in text and README_END in text:
        before = text[: text.index(README_START)]
        after = text[text.index(README_END) + len(README_END):]
        text = before + block + after
    else:
        raise SystemExit(f"{readme}: no {README_START} ... {README_END} block")
    readme.write_text(text)
    print(f"updated {readme}")


def write(results: dict, out_dir: Path) -> None:
    (out_dir / "results.md").write_text(markdown(results))
    print(f"wrote {out_dir / 'results.md'}")
    for p in charts(results, out_dir):
        print(f"wrote {p}")
    fails = failures(results)
    if fails:
        print(f"{len(fails)} failure(s): " + "; ".join(f"{w} / {m} / {e}" for e, w, m, _ in fails))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("results_dir")
    ap.add_argument("--readme", help="replace the README's bench:realworld block with these results")
    a = ap.parse_args()
    d = Path(a.results_dir)
    res = json.loads((d / "results.json").read_text())
    if (d / "instructions.json").exists():
        res["instructions"] = json.loads((d / "instructions.json").read_text())
    write(res, d)
    if a.readme:
        readme = Path(a.readme).resolve()
        update_readme(readme, res, os.path.relpath(d.resolve(), readme.parent))
