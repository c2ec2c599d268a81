#!/usr/bin/env python3
"""CSV → Parquet `collect` of the UCI Online Retail file, side by side with pandas, polars
and pyarrow.

How to run (from the repo root):

    cargo build --profile bench-fast --bin sluice      # or set SLUICE_BIN=/path/to/sluice
    python3 -m venv bench/.venv && bench/.venv/bin/pip install pandas pyarrow polars kedro
    SLUICE_RETAIL_CSV=/path/to/online_retail.csv bench/.venv/bin/python bench/csv_collect.py
    # SLUICE_RETAIL_CSV defaults to ../shared/data/online-retail/online_retail.csv
    # relative to the repo root. --runs N sets the measured runs per series (default 7).

Before the series the script waits (up to 20 min, polling every 15 s) until no rustc/cargo
process runs and the 1-minute load average is below 1.0 (BENCH_NO_WAIT=1 skips the wait),
and records the load average. Results go to bench/out/csv_collect.json and a Markdown table
to stdout.

What it measures, each as one warm-up run then N runs (medians, min–max), every command a
separate process timed from spawn to exit, peak RSS of that process from wait4():

* sluice: `sluice run` of a one-stage pipeline (`collect`, connector csv, default options)
  with a fresh state dir each run, so the stage executes (process start, source
  fingerprint, CSV parse, Parquet write, run record). Throughput = file size / wall time
  (MB = 10^6 bytes). Checks that the run record says 541,909 rows.
* sluice, `--force-all` on a state dir that already holds the source fingerprint: the same
  stage without the first-time content hash of the source.
* peers (default CSV options, zstd Parquet): pandas read_csv; pandas read_csv + to_parquet;
  polars read_csv; polars read_csv + write_parquet; pyarrow.csv read_csv; pyarrow read_csv +
  write_table. Wall includes interpreter start and imports; `work` is the time after
  imports as the peer reports it.

The file is read once by the warm-up run, so every measured run reads it from the page cache.
The data is never copied into the repo: outputs go to a temp dir that is removed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

EXPECTED_ROWS = 541_909
PEERS = ["pandas_read", "pandas_parquet", "polars_read", "polars_parquet", "pyarrow_read", "pyarrow_parquet"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()

    binary = bl.require_binary()
    csv = bl.retail_csv()
    if not csv.is_file():
        sys.exit(f"data not found: {csv} (set SLUICE_RETAIL_CSV)")
    size = csv.stat().st_size
    res: dict = {"machine": bl.machine(), "csv": str(csv), "csv_bytes": size, "runs": args.runs, "series": {}}
    res["sluice_version"] = bl.run_timed([str(binary), "--version"])["stdout"].strip()
    S = res["series"]

    with tempfile.TemporaryDirectory(prefix="sluice-bench-csv-") as tmp:
        work = Path(tmp)
        binary, res["binary"] = bl.snapshot_binary(binary, work)
        pipeline = work / "retail.toml"
        pipeline.write_text(
            '[pipeline]\nname = "retail-collect"\n\n'
            f'[stages.orders]\nkind = "collect"\nconnector = "csv"\npath = {json.dumps(str(csv))}\n'
        )

        q = bl.wait_quiet("csv collect")
        res["load"] = {"before": bl.loadavg()[0], "wait": q}

        # sluice, fresh state dir each run.
        walls, rss, stage_ms, rows, pq_bytes, users = [], [], [], [], [], []
        for i in range(args.runs + 1):
            state = work / f"state{i}"
            r = bl.run_timed([str(binary), "--state-dir", str(state), "run", str(pipeline), "--json"], cwd=work)
            rec = json.loads(r["stdout"])
            st = rec["stages"][0]
            if rec["status"] != "succeeded" or st.get("cache") != "miss":
                raise RuntimeError(f"sluice run did not execute the stage: {rec['status']} {st.get('cache')}")
            if i:
                walls.append(r["wall_s"])
                rss.append(r["rss_mib"])
                users.append(r["user_s"] + r["sys_s"])
                stage_ms.append(st["duration_ms"])
                rows.append(st["rows_out"])
                pq_bytes.append(st.get("bytes_out"))
            shutil.rmtree(state, ignore_errors=True)
        S["sluice"] = {
            "wall_s": bl.summary(walls),
            "mb_per_s": bl.summary([size / 1e6 / w for w in walls]),
            "rss_mib": bl.summary(rss),
            "cpu_s": bl.summary(users),
            "stage_duration_ms": bl.summary(stage_ms),
            "rows_out": sorted(set(rows)),
            "rows_ok": all(x == EXPECTED_ROWS for x in rows),
            "parquet_bytes": pq_bytes[-1],
        }
        bl.log(f"sluice: {bl.fmt(S['sluice']['wall_s'], 1000)} ms, {bl.fmt(S['sluice']['mb_per_s'])} MB/s, "
               f"rows {S['sluice']['rows_out']}")

        S["sluice"]["rss_via_time_mib"] = bl.peak_rss_via_time(
            [str(binary), "--state-dir", str(work / "state-rss"), "run", str(pipeline), "--json"], cwd=work)
        shutil.rmtree(work / "state-rss", ignore_errors=True)

        # sluice, --force-all on a state dir with the fingerprint memo.
        state = work / "state-warm"
        bl.run_timed([str(binary), "--state-dir", str(state), "run", str(pipeline), "--json"], cwd=work)
        walls, rss, stage_ms = [], [], []
        for i in range(args.runs + 1):
            r = bl.run_timed([str(binary), "--state-dir", str(state), "run", str(pipeline), "--json", "--force-all"], cwd=work)
            rec = json.loads(r["stdout"])
            if i:
                walls.append(r["wall_s"])
                rss.append(r["rss_mib"])
                stage_ms.append(rec["stages"][0]["duration_ms"])
        S["sluice_force_all"] = {
            "wall_s": bl.summary(walls),
            "mb_per_s": bl.summary([size / 1e6 / w for w in walls]),
            "rss_mib": bl.summary(rss),
            "stage_duration_ms": bl.summary(stage_ms),
        }
        shutil.rmtree(state, ignore_errors=True)

        if not args.no_peers:
            peer_script = Path(__file__).resolve().parent / "csv_peers.py"
            for mode in PEERS:
                walls, rss, works, rows = [], [], [], []
                for i in range(args.runs + 1):
                    out = work / "peer-out"
                    out.mkdir(exist_ok=True)
                    r = bl.run_timed([sys.executable, str(peer_script), mode, str(csv), str(out)])
                    d = json.loads(r["stdout"].strip().splitlines()[-1])
                    if i:
                        walls.append(r["wall_s"])
                        rss.append(r["rss_mib"])
                        works.append(d["work_s"])
                        rows.append(d["rows"])
                        pqb = d["parquet_bytes"]
                    shutil.rmtree(out, ignore_errors=True)
                S[mode] = {
                    "wall_s": bl.summary(walls),
                    "work_s": bl.summary(works),
                    "mb_per_s": bl.summary([size / 1e6 / w for w in walls]),
                    "work_mb_per_s": bl.summary([size / 1e6 / w for w in works]),
                    "rss_mib": bl.summary(rss),
                    "rows": sorted(set(rows)),
                    "parquet_bytes": pqb,
                }
                bl.log(f"{mode}: {bl.fmt(S[mode]['wall_s'], 1000)} ms")
        res["load"]["after"] = bl.loadavg()[0]

    bl.save("csv_collect", res)
    print(report(res))


def report(res: dict) -> str:
    S = res["series"]
    f = bl.fmt
    lines = [
        f"harness peak RSS (floor of every RSS figure): {res.get('harness_rss_mib', 0):.1f} MiB",
        f"sluice: {res['sluice_version']}, commit {res['machine']['git_commit']}; file {res['csv_bytes'] / 1e6:.1f} MB; "
        f"load1 {res['load']['before']:.2f} → {res['load'].get('after', float('nan')):.2f}",
        "",
        "| tool | wall ms (process) | MB/s (wall) | work ms (after imports) | peak RSS MiB | rows | Parquet MB |",
        "|---|---|---|---|---|---|---|",
    ]
    s = S["sluice"]
    lines.append(f"| sluice run (fresh state) | {f(s['wall_s'], 1000, 0)} | {f(s['mb_per_s'], digits=0)} | "
                 f"stage {f(s['stage_duration_ms'], digits=0)} | {f(s['rss_mib'], digits=0)} | "
                 f"{', '.join(map(str, s['rows_out']))} | {s['parquet_bytes'] / 1e6:.1f} |")
    if s.get("rss_via_time_mib"):
        lines.append(f"| sluice run, peak RSS under GNU time (no harness floor) | | | | {s['rss_via_time_mib']:.0f} | | |")
    s = S["sluice_force_all"]
    lines.append(f"| sluice run --force-all (fingerprint memoised) | {f(s['wall_s'], 1000, 0)} | {f(s['mb_per_s'], digits=0)} | "
                 f"stage {f(s['stage_duration_ms'], digits=0)} | {f(s['rss_mib'], digits=0)} | | |")
    for mode in PEERS:
        if mode not in S:
            continue
        s = S[mode]
        pqb = f"{s['parquet_bytes'] / 1e6:.1f}" if s["parquet_bytes"] else "—"
        lines.append(f"| {mode} | {f(s['wall_s'], 1000, 0)} | {f(s['mb_per_s'], digits=0)} | {f(s['work_s'], 1000, 0)} | "
                     f"{f(s['rss_mib'], digits=0)} | {', '.join(map(str, s['rows']))} | {pqb} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
