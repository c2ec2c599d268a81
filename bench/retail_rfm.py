#!/usr/bin/env python3
"""Online Retail → clean → per-customer RFM → Parquet: `sluice run pipelines/retail-rfm.toml`
side by side with the same job in pandas and polars (bench/rfm_peers.py).

How to run (from the repo root):

    cargo build --profile bench-fast --bin sluice      # or set SLUICE_BIN=/path/to/sluice
    python3 -m venv bench/.venv && bench/.venv/bin/pip install pandas pyarrow polars
    bench/.venv/bin/python bench/retail_rfm.py          # --runs N (default 7), --scale 10

The CSV is `$SLUICE_RETAIL_CSV`, default ../shared/data/online-retail/online_retail.csv
relative to the repo root. `--scale K` (K > 1) first writes a K× file into a temp dir by
resampling with replacement (seeded) and giving every draw a fresh invoice number, then
times every tool on it. `--resample invoices` (the default) draws whole invoices, so the
file keeps the real one's structure; `--resample rows` draws single lines, as sessions 1–12
did (see make_scaled and docs/decisions.md).

Each tool: one warm-up run, then N runs, each a separate process timed from spawn to exit
(wall includes interpreter start and imports for the peers, process start for sluice, which
gets a fresh state dir every run so every stage executes). Peak RSS per process via wait4,
and once more under GNU time for sluice (no harness floor).

After the series, the RFM tables are compared value by value: sluice's `rfm` output against
pandas' (recency and frequency exactly, monetary to 1e-6 relative), so a fast wrong answer
cannot pass. Results go to bench/out/retail_rfm[_xK].json and a Markdown table to stdout.
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

PIPELINE = bl.REPO / "pipelines" / "retail-rfm.toml"
PEERS = ["pandas", "polars"]


def make_scaled(src: Path, k: int, dst: Path, unit: str = "invoices") -> None:
    """K× the data, drawn with replacement (seeded), each draw under a fresh invoice number.

    unit "invoices": whole invoices are drawn, K× as many as the file has; each drawn invoice
    keeps its lines in order under a number of its own, and the draws are written in the
    order of the original invoices, so the file stays in time order and reads like a bigger
    shop's log (the 1× file's exact duplicate lines scale with it).
    unit "rows" (sessions 1–12): K rounds of drawing single lines, one round per copy of the
    file, invoice numbers made fresh per round. The lines end up shuffled, and a line drawn
    twice in a round is an exact duplicate: about 30 % of the rows, against 1 % at 1×.
    """
    import subprocess

    if unit not in ("invoices", "rows"):
        raise ValueError(f"unit must be invoices or rows, not {unit!r}")
    code = f"""
import pandas as pd, numpy as np
df = pd.read_csv({str(src)!r}, dtype=str, keep_default_na=False)
rng = np.random.default_rng(7)
prefix = df["InvoiceNo"].str.extract(r"^([A-Za-z]*)")[0]
digits = df["InvoiceNo"].str.replace(r"^[A-Za-z]*", "", regex=True)
if {unit!r} == "rows":
    parts = []
    for r in range({k}):
        pick = rng.integers(0, len(df), len(df))
        s = df.iloc[pick].copy()
        s["InvoiceNo"] = (prefix.iloc[pick] + digits.iloc[pick] + str(r)).values
        parts.append(s)
    out = pd.concat(parts)
else:
    # Lines of each invoice, in file order: invoice i holds lines[start[i]:end[i]].
    inv, names = pd.factorize(df["InvoiceNo"], sort=False)
    lines = np.argsort(inv, kind="stable")
    start = np.searchsorted(inv[lines], np.arange(len(names)))
    end = np.append(start[1:], len(lines))
    draws = np.sort(rng.integers(0, len(names), {k} * len(names)), kind="stable")
    take = np.concatenate([lines[start[d]:end[d]] for d in draws])
    out = df.iloc[take].copy()
    copy = np.repeat(np.arange(len(draws)), end[draws] - start[draws])
    out["InvoiceNo"] = prefix.iloc[take].values + (copy + 1_000_000).astype(str)
out.to_csv({str(dst)!r}, index=False)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--resample", choices=["invoices", "rows"], default="invoices",
                    help="what --scale draws: whole invoices (default) or single lines (see make_scaled)")
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()

    binary = bl.require_binary()
    csv = bl.retail_csv()
    if not csv.is_file():
        sys.exit(f"data not found: {csv} (set SLUICE_RETAIL_CSV)")
    name = "retail_rfm" if args.scale == 1 else f"retail_rfm_x{args.scale}_{args.resample}"
    res: dict = {"machine": bl.machine(), "runs": args.runs, "scale": args.scale, "series": {}}
    if args.scale > 1:
        res["resample"] = args.resample
    S = res["series"]

    with tempfile.TemporaryDirectory(prefix="sluice-bench-rfm-") as tmp:
        work = Path(tmp)
        binary, res["binary"] = bl.snapshot_binary(binary, work)
        if args.scale > 1:
            scaled = work / f"online_retail_x{args.scale}.csv"
            bl.log(f"writing {scaled} ...")
            make_scaled(csv, args.scale, scaled, args.resample)
            csv = scaled
        res["csv"], res["csv_bytes"] = str(csv), csv.stat().st_size

        q = bl.wait_quiet("retail rfm")
        res["load"] = {"before": bl.loadavg()[0], "wait": q}

        cmd = lambda state: [str(binary), "--state-dir", str(state), "run", str(PIPELINE),  # noqa: E731
                             "--param", f"data={csv}", "--json"]
        walls, rss, cpu, per_stage = [], [], [], {}
        record = None
        for i in range(args.runs + 1):
            state = work / f"state{i}"
            r = bl.run_timed(cmd(state), cwd=work)
            rec = json.loads(r["stdout"])
            if rec["status"] != "succeeded" or any(s.get("cache") != "miss" for s in rec["stages"]):
                raise RuntimeError(f"sluice run did not execute every stage: {rec['status']}")
            if i:
                walls.append(r["wall_s"])
                rss.append(r["rss_mib"])
                cpu.append(r["user_s"] + r["sys_s"])
                for s in rec["stages"]:
                    per_stage.setdefault(s["name"], []).append(s["duration_ms"])
            if i == args.runs:
                record = rec
                # Keep the last state dir: its RFM output is compared below.
                last_state = state
            else:
                shutil.rmtree(state, ignore_errors=True)
        S["sluice"] = {
            "wall_s": bl.summary(walls), "rss_mib": bl.summary(rss), "cpu_s": bl.summary(cpu),
            "stage_ms": {k: bl.summary(v) for k, v in per_stage.items()},
            "rows": {s["name"]: s["rows_out"] for s in record["stages"]},
            "operations": {s["name"]: s.get("metrics", {}).get("operations") for s in record["stages"]},
        }
        S["sluice"]["rss_via_time_mib"] = bl.peak_rss_via_time(cmd(work / "state-rss"), cwd=work)
        bl.log(f"sluice: {bl.fmt(S['sluice']['wall_s'], 1000)} ms")
        rfm_path = next(s for s in record["stages"] if s["name"] == "rfm")["outputs"]["data"]

        if not args.no_peers:
            peer_script = Path(__file__).resolve().parent / "rfm_peers.py"
            for mode in PEERS:
                walls, rss, works = [], [], []
                for i in range(args.runs + 1):
                    out = work / f"{mode}.parquet"
                    r = bl.run_timed([sys.executable, str(peer_script), mode, str(csv), str(out)])
                    d = json.loads(r["stdout"].strip().splitlines()[-1])
                    if i:
                        walls.append(r["wall_s"])
                        rss.append(r["rss_mib"])
                        works.append(d["work_s"])
                S[mode] = {"wall_s": bl.summary(walls), "work_s": bl.summary(works), "rss_mib": bl.summary(rss),
                           "rows": d["rows"], "counts": d["counts"]}
                bl.log(f"{mode}: {bl.fmt(S[mode]['wall_s'], 1000)} ms")
            res["compare"] = compare(rfm_path, work / "pandas.parquet")
        res["load"]["after"] = bl.loadavg()[0]
        shutil.rmtree(last_state, ignore_errors=True)

    bl.save(name, res)
    print(report(res))


def compare(sluice_parquet: str, pandas_parquet: Path) -> dict:
    """Value-by-value comparison in a child process (the harness stays small)."""
    import subprocess

    code = f"""
import json, pandas as pd, numpy as np
a = pd.read_parquet({sluice_parquet!r}).sort_values("CustomerID").reset_index(drop=True)
b = pd.read_parquet({str(pandas_parquet)!r}).sort_values("CustomerID").reset_index(drop=True)
out = {{"sluice_rows": len(a), "pandas_rows": len(b)}}
if len(a) == len(b):
    out["customers_equal"] = bool((a.CustomerID.astype(float).values == b.CustomerID.astype(float).values).all())
    out["recency_equal"] = bool((a.recency.astype("int64").values == b.recency.values).all())
    out["frequency_equal"] = bool((a.frequency.astype("int64").values == b.frequency.values).all())
    rel = np.abs(a.monetary.values - b.monetary.values) / np.maximum(1.0, np.abs(b.monetary.values))
    out["monetary_max_rel_diff"] = float(rel.max())
    out["identical"] = out["customers_equal"] and out["recency_equal"] and out["frequency_equal"] and out["monetary_max_rel_diff"] < 1e-6
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def report(res: dict) -> str:
    S = res["series"]
    f = bl.fmt
    lines = [
        f"file {res['csv_bytes'] / 1e6:.1f} MB (scale {res['scale']}×"
        + (f", {res['resample']} resampled" if "resample" in res else "") + f"); commit {res['machine']['git_commit']}; "
        f"load1 {res['load']['before']:.2f} → {res['load'].get('after', float('nan')):.2f}; "
        f"harness peak RSS {res.get('harness_rss_mib', 0):.0f} MiB",
        "",
        "| tool | wall ms (process) | work ms (after imports) | CPU s | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    s = S["sluice"]
    lines.append(f"| sluice run (fresh state) | {f(s['wall_s'], 1000, 0)} | — | {f(s['cpu_s'], digits=2)} | "
                 f"{f(s['rss_mib'], digits=0)} (GNU time: {s.get('rss_via_time_mib') or 0:.0f}) |")
    for mode in PEERS:
        if mode in S:
            p = S[mode]
            lines.append(f"| {mode} | {f(p['wall_s'], 1000, 0)} | {f(p['work_s'], 1000, 0)} | — | {f(p['rss_mib'], digits=0)} |")
    lines.append("")
    lines.append("sluice stages (ms): " + ", ".join(f"{k} {f(v, digits=1)}" for k, v in s["stage_ms"].items()))
    lines.append(f"sluice rows: {s['rows']}")
    if "compare" in res:
        lines.append(f"RFM vs pandas: {res['compare']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
