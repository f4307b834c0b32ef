"""Run jobq's benchmarks; each prints its baseline from the same run and the ratio.

    .venv/bin/python bench/run.py            # the full set (~15 min)
    .venv/bin/python bench/run.py --quick    # reduced sizes (~1-2 min)
    .venv/bin/python bench/run.py --only enqueue,drain
    .venv/bin/python bench/run.py --only pg          # the PostgreSQL section (pg-* parts)

Writes bench/results/<part>.json and bench/results/summary.md (quick runs: bench/results/quick/).
The summary combines the latest result of every part in that folder, so `--only PART` refreshes
one part's rows and keeps the others (each part's date is in its JSON).
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import importlib
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS_DIR, ROOT, Config, Row, Skip, fmt_value, machine

# part name -> module (in bench/) with run(cfg) -> list[Row]
PARTS = {
    "enqueue": "enqueue",
    "drain": "drain",
    "commands": "commands",
    "latency": "latency",
    "schedule": "schedule",
    "readers": "readers",
    "cli": "cli",
    "scale": "scale",
    "contention": "contention",
    "soak": "soak",
    "tui": "tui_metrics",  # not `tui`: that would shadow the dashboard package
    # the PostgreSQL section: one throwaway server for the run (bench/pg_common.py)
    "pg-enqueue": "pg_enqueue",
    "pg-drain": "pg_drain",
    "pg-latency": "pg_latency",
    "pg-scale": "pg_scale",
}
GROUPS = {
    "pg": [p for p in PARTS if p.startswith("pg-")],
    "sqlite": [p for p in PARTS if not p.startswith("pg-")],
}


def run_part(name: str, cfg: Config) -> tuple[list[Row], str | None]:
    try:
        module = importlib.import_module(PARTS[name])
        return module.run(cfg), None
    except Skip as e:
        return [Row(name, None, "", note=f"skipped: {e}")], None
    except Exception as e:
        return [Row(name, None, "", note=f"error: {type(e).__name__}: {e}")], traceback.format_exc()


def ratio_text(r: Row) -> str:
    if r.ratio is None:
        return "—"
    return f"{r.ratio:.2f}×" if r.ratio >= 0.1 else f"{r.ratio:.2g}×"


def met_text(r: Row) -> str:
    return {True: "yes", False: "**no**", None: "—"}[r.met]


def print_row(r: Row) -> None:
    if r.jobq is None:
        print(f"  {r.metric}: {r.note}", flush=True)
        return
    base = f"  vs {r.baseline_name} {fmt_value(r.baseline, r.unit)}" if r.baseline_name else ""
    print(
        f"  {r.metric}: {fmt_value(r.jobq, r.unit)}{base}  ratio {ratio_text(r)}"
        f"  goal {r.goal or '—'}  met: {met_text(r)}" + (f"  [{r.note}]" if r.note else ""),
        flush=True,
    )


def load_rows(outdir: str) -> tuple[list[Row], list[str]]:
    """The rows of every part's latest result in `outdir`, and when each part ran."""
    rows: list[Row] = []
    dates: list[str] = []
    for name in PARTS:
        path = os.path.join(outdir, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            doc = json.load(f)
        rows.extend(Row(**r) for r in doc["rows"])
        m = doc["machine"]
        dates.append(f"{name} {m['date_utc']} (load {m.get('loadavg_1m', '?')})")
    return rows, dates


def markdown(rows: list[Row], dates: list[str], info: dict[str, object], cfg: Config) -> str:
    lines = [
        "# jobq benchmarks",
        "",
        f"{'Quick' if cfg.quick else 'Full'} run: {info['cpu']}, {info['cores']} cores, "
        f"Python {info['python']}, SQLite {info['sqlite']}, {info['platform']}. "
        f"Parts run (UTC, with the 1-minute load average at their start): {'; '.join(dates)}. "
        "Values are medians (min–max) over alternating repeats unless the note says otherwise; "
        "ratio = median of the per-round ratios.",
        "",
        "| metric | jobq | baseline | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.jobq is None:
            lines.append(f"| {r.metric} | {r.note} | | | {r.goal} | — |")
            continue
        base = f"{r.baseline_name}: {fmt_value(r.baseline, r.unit)}" if r.baseline_name else "—"
        metric = r.metric + (f" <br><sub>{r.note}</sub>" if r.note else "")
        lines.append(
            f"| {metric} | {fmt_value(r.jobq, r.unit)} | {base} | {ratio_text(r)} "
            f"| {r.goal or '—'} | {met_text(r)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced sizes, about a minute")
    ap.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma list of {','.join(PARTS)}, or the groups pg, sqlite",
    )
    ap.add_argument("--repeats", type=int, default=None, help="rounds per comparison")
    ap.add_argument(
        "--long-idle",
        action="store_true",
        help="latency: the 60 s idle batch in a --quick run too (the full run always has it)",
    )
    args = ap.parse_args()
    parts = []
    for p in (p.strip() for p in args.only.split(",")):
        parts.extend(GROUPS.get(p, [p] if p else []))
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s): {', '.join(unknown)}")
    cfg = Config(
        quick=args.quick,
        repeats=args.repeats or (3 if args.quick else 5),
        long_idle=args.long_idle,
    )
    # Measure what users run: an installed jobq has bytecode (pip compiles it), while an editable
    # checkout under PYTHONDONTWRITEBYTECODE=1 would recompile every module at every start-up.
    for package in ("jobq", "tui"):
        compileall.compile_dir(os.path.join(ROOT, package), quiet=1)
    info = machine()
    print(f"jobq bench ({'quick' if cfg.quick else 'full'}): {info}", flush=True)
    outdir = os.path.join(RESULTS_DIR, "quick") if cfg.quick else RESULTS_DIR
    os.makedirs(outdir, exist_ok=True)
    t_all = time.monotonic()
    for name in parts:
        t0 = time.monotonic()
        part_info = machine()  # its own date and load average
        print(f"[{name}] load {part_info['loadavg_1m']}", flush=True)
        part_rows, tb = run_part(name, cfg)
        for r in part_rows:
            print_row(r)
        if tb:
            print(tb, file=sys.stderr)
        seconds = round(time.monotonic() - t0, 1)
        print(f"  ({seconds} s)", flush=True)
        with open(os.path.join(outdir, f"{name}.json"), "w") as f:
            doc = {
                "machine": part_info,
                "quick": cfg.quick,
                "repeats": cfg.repeats,
                "seconds": seconds,
                "rows": [dataclasses.asdict(r) for r in part_rows],
                "traceback": tb,
            }
            json.dump(doc, f, indent=1, default=str)
    all_rows, dates = load_rows(outdir)
    summary = markdown(all_rows, dates, info, cfg)
    out = os.path.join(outdir, "summary.md")
    with open(out, "w") as f:
        f.write(summary)
    print(f"\n{summary}\n(this run {time.monotonic() - t_all:.0f} s; {os.path.relpath(out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
