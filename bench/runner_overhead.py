#!/usr/bin/env python3
"""Runner overhead of `sluice run`, side by side with Kedro.

How to run (from the repo root):

    cargo build --profile bench-fast --bin sluice      # or set SLUICE_BIN=/path/to/sluice
    python3 -m venv bench/.venv && bench/.venv/bin/pip install pandas pyarrow polars kedro
    bench/.venv/bin/python bench/runner_overhead.py              # full series (~4 min on 2 cores)
    bench/.venv/bin/python bench/runner_overhead.py --quick      # fewer runs, for a smoke test

Before each series the script waits (up to 20 min, polling every 15 s) until no rustc/cargo
process runs and the 1-minute load average is below 1.0 (BENCH_NO_WAIT=1 skips the wait),
and records the load average. Each series is one warm-up run, then N measured runs;
figures are medians with (min–max). Results go to bench/out/runner_overhead.json and a
Markdown summary to stdout. State dirs live in a temp dir (TMPDIR=/dev/shm puts them on
tmpfs) and are kept until the script ends, because deleting thousands of files slows the
next file creations on ext4 without a journal (see bench/README.md).

What it measures (all pipelines are generated into a temp dir; every `sluice run` is a new
process with `--json`, timed from spawn to exit):

* floor: `sluice --version`.
* cold start: a one-stage pipeline (a `collect` of a 3-row CSV), fresh state dir each run.
* chain of N (N = 200, plus 50/100/400 to see how the per-stage cost scales): a collect of
  the 3-row CSV and N-1 `feature-extract` stages, each `SELECT * FROM <previous>`.
* fan-out of 200: one collect and 199 feature-extract stages each `SELECT * FROM src`,
  with `--jobs 1` and with the default jobs.
  For each: per-stage time = wall / N, and orchestration overhead =
  (wall - sum of the stages' duration_ms in the run record) / N. With more than one job
  the stage durations overlap, so the second figure is only meaningful for `--jobs 1`.
* 7-stage DAG (collect + 6 feature-extract): a cold run, and a fully cached re-run.
* Kedro: a generated minimal project, `kedro run --pipeline P` for the same shapes (1 node,
  7-node DAG, 200-node chain and fan-out), and `SequentialRunner.run` in-process for the
  200-node shapes (runner cost without interpreter start and session creation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

TINY_CSV = "id,name,value\n1,a,1.5\n2,b,2.5\n3,c,3.5\n"


# ---------------------------------------------------------------- pipeline generation

def pipeline_one(name: str = "one") -> str:
    return f'[pipeline]\nname = "{name}"\n\n[stages.src]\nkind = "collect"\nconnector = "csv"\npath = "tiny.csv"\n'


def pipeline_chain(n: int) -> str:
    parts = [f'[pipeline]\nname = "chain{n}"\n', '[stages.s0]\nkind = "collect"\nconnector = "csv"\npath = "tiny.csv"\n']
    for i in range(1, n):
        parts.append(f'[stages.s{i}]\nkind = "feature-extract"\ninputs = ["s{i - 1}"]\nsql = "SELECT * FROM s{i - 1}"\n')
    return "\n".join(parts)


def pipeline_fanout(n: int) -> str:
    parts = [f'[pipeline]\nname = "fanout{n}"\n', '[stages.src]\nkind = "collect"\nconnector = "csv"\npath = "tiny.csv"\n']
    for i in range(1, n):
        parts.append(f'[stages.f{i}]\nkind = "feature-extract"\ninputs = ["src"]\nsql = "SELECT * FROM src"\n')
    return "\n".join(parts)


def pipeline_dag7() -> str:
    return '''[pipeline]
name = "dag7"

[stages.src]
kind = "collect"
connector = "csv"
path = "tiny.csv"

[stages.a]
kind = "feature-extract"
inputs = ["src"]
sql = "SELECT id, value FROM src"

[stages.b]
kind = "feature-extract"
inputs = ["src"]
sql = "SELECT id, name FROM src"

[stages.c]
kind = "feature-extract"
inputs = ["a", "b"]
sql = "SELECT a.id, a.value, b.name FROM a JOIN b ON a.id = b.id"

[stages.d]
kind = "feature-extract"
inputs = ["c"]
sql = "SELECT name, SUM(value) AS total FROM c GROUP BY name"

[stages.e]
kind = "feature-extract"
inputs = ["c"]
sql = "SELECT COUNT(*) AS n FROM c"

[stages.f]
kind = "feature-extract"
inputs = ["d", "e"]
sql = "SELECT * FROM d CROSS JOIN e"
'''


# ---------------------------------------------------------------- sluice runs

class Sluice:
    def __init__(self, binary: Path, work: Path):
        self.bin = binary
        self.work = work
        self.states = work / "state"
        self.states.mkdir()
        self.k = 0

    def fresh_state(self) -> Path:
        self.k += 1
        d = self.states / f"s{self.k}"
        return d

    def run(self, pipeline: Path, state: Path, extra: list[str] = ()) -> tuple[dict, dict]:
        cmd = [str(self.bin), "--state-dir", str(state), "run", str(pipeline), "--json", *extra]
        r = bl.run_timed(cmd, cwd=self.work)
        rec = json.loads(r["stdout"])
        if rec.get("status") != "succeeded":
            raise RuntimeError(f"run did not succeed: {rec.get('status')}\n{r['stderr'][-2000:]}")
        return r, rec


def stage_sum_ms(rec: dict) -> float:
    return sum(s.get("duration_ms") or 0.0 for s in rec["stages"])


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def launch_ms(rec: dict) -> list[float]:
    """Per stage: (finished_at - started_at) - duration_ms. started_at is taken by the
    executor before it hands the stage to a thread, duration_ms by that thread, so this is
    the hand-off (thread start) and hand-back cost the stage's own clock does not see."""
    out = []
    for s in rec["stages"]:
        if s.get("finished_at") and s.get("started_at") and s.get("duration_ms") is not None:
            out.append((_ts(s["finished_at"]) - _ts(s["started_at"])).total_seconds() * 1000 - s["duration_ms"])
    return out


def chain_gaps_ms(rec: dict) -> list[float]:
    """For a chain: time between a stage's finished_at and the next stage's started_at."""
    st = rec["stages"]
    out = []
    for a, b in zip(st, st[1:]):
        if a.get("finished_at") and b.get("started_at"):
            out.append((_ts(b["started_at"]) - _ts(a["finished_at"])).total_seconds() * 1000)
    return out


def cold_series(sl: Sluice, pipeline: Path, n_stages: int, runs: int, extra: list[str] = ()) -> dict:
    """Warm-up + `runs` cold runs (fresh state dir each); wall, per-stage and overhead."""
    walls, overheads, execs, sums, rss, gaps, launches, stage_med = [], [], [], [], [], [], [], []
    for i in range(runs + 1):
        state = sl.fresh_state()
        r, rec = sl.run(pipeline, state, list(extra))
        misses = sum(1 for s in rec["stages"] if s.get("cache") == "miss")
        if misses != n_stages:
            raise RuntimeError(f"expected {n_stages} executed stages, got {misses}")
        # State dirs are kept until the script ends (see the note on file deletion in
        # bench/README.md): deleting thousands of files between runs slows the next run's
        # file creation on ext4 without a journal.
        if i == 0:
            continue
        s = stage_sum_ms(rec)
        walls.append(r["wall_s"] * 1000)
        sums.append(s)
        execs.append(rec.get("duration_ms") or 0.0)
        overheads.append((r["wall_s"] * 1000 - s) / n_stages)
        rss.append(r["rss_mib"])
        g = chain_gaps_ms(rec)
        if g:
            gaps.append(statistics.median(g))
        launches.append(statistics.median(launch_ms(rec)))
        stage_med.append(statistics.median(x["duration_ms"] for x in rec["stages"]))
    return {
        "stages": n_stages,
        "wall_ms": bl.summary(walls),
        "per_stage_ms": bl.summary([w / n_stages for w in walls]),
        "overhead_per_stage_ms": bl.summary(overheads),
        "stage_duration_sum_ms": bl.summary(sums),
        "executor_ms": bl.summary(execs),
        "outside_executor_ms": bl.summary([w - e for w, e in zip(walls, execs)]),
        "median_gap_between_stages_ms": bl.summary(gaps) if gaps else None,
        "median_launch_ms": bl.summary(launches),
        "median_stage_duration_ms": bl.summary(stage_med),
        "rss_mib": bl.summary(rss),
    }


def simple_series(cmd_fn, runs: int) -> dict:
    walls, rss = [], []
    for i in range(runs + 1):
        r = cmd_fn()
        if i:
            walls.append(r["wall_s"] * 1000)
            rss.append(r["rss_mib"])
    return {"wall_ms": bl.summary(walls), "rss_mib": bl.summary(rss)}


# ---------------------------------------------------------------- kedro

def kedro_env() -> dict:
    env = dict(os.environ)
    env["KEDRO_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "1"
    return env


def kedro_available() -> tuple[bool, str]:
    """Asks a child interpreter, so the harness itself does not import kedro (its RSS
    would become the floor of every child's peak RSS, see benchlib.run_timed)."""
    r = bl.run_timed([sys.executable, "-c", "import kedro; print(kedro.__version__)"], env=kedro_env(), check=False)
    if r["code"] != 0:
        return False, r["stderr"].strip().splitlines()[-1] if r["stderr"].strip() else "import failed"
    return True, r["stdout"].strip()


def kedro_series(project: Path, pipeline: str, runs: int) -> dict:
    kedro = Path(sys.executable).parent / "kedro"
    env = kedro_env()
    return simple_series(lambda: bl.run_timed([str(kedro), "run", "--pipeline", pipeline], cwd=project, env=env), runs)


def kedro_inproc(shape: str, n: int, csv: Path, runs: int) -> dict:
    script = Path(__file__).resolve().parent / "kedro_peer.py"
    r = bl.run_timed([sys.executable, str(script), "inproc", shape, str(n), str(csv), str(runs)], env=kedro_env())
    data = json.loads(r["stdout"].strip().splitlines()[-1])
    ms = [t * 1000 for t in data["times_s"]]
    return {"nodes": data["nodes"], "run_ms": bl.summary(ms), "per_node_ms": bl.summary([m / data["nodes"] for m in ms])}


# ---------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 runs per series, chain sizes 50 and 200 only")
    ap.add_argument("--runs", type=int, default=None, help="measured runs per large series (default 5)")
    ap.add_argument("--small-runs", type=int, default=None, help="measured runs per small timing (default 15)")
    ap.add_argument("--sizes", default=None, help="chain sizes, comma-separated (default 50,100,200,400)")
    ap.add_argument("--no-kedro", action="store_true")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    small = args.small_runs or (3 if args.quick else 15)
    sizes = [int(x) for x in (args.sizes or ("50,200" if args.quick else "50,100,200,400")).split(",")]
    if 200 not in sizes:
        sizes.append(200)

    binary = bl.require_binary()
    res: dict = {"machine": bl.machine(), "runs": runs, "small_runs": small, "series": {}}
    S = res["series"]

    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        work = Path(tmp)
        binary, res["binary"] = bl.snapshot_binary(binary, work)
        res["sluice_version"] = bl.run_timed([str(binary), "--version"])["stdout"].strip()
        (work / "tiny.csv").write_text(TINY_CSV)
        files = {
            "one": pipeline_one(),
            "dag7": pipeline_dag7(),
            "fanout200": pipeline_fanout(200),
            **{f"chain{n}": pipeline_chain(n) for n in sizes},
        }
        for name, text in files.items():
            (work / f"{name}.toml").write_text(text)
        sl = Sluice(binary, work)

        # Small timings: floor, cold start, 7-stage cold and cached.
        q = bl.wait_quiet("small timings")
        load = {"before": bl.loadavg()[0], "wait": q}
        S["version"] = simple_series(lambda: bl.run_timed([str(binary), "--version"]), small)
        S["cold_start_1_stage"] = cold_series(sl, work / "one.toml", 1, small)
        S["dag7_cold"] = cold_series(sl, work / "dag7.toml", 7, small)
        state = sl.fresh_state()
        sl.run(work / "dag7.toml", state)
        walls, rss = [], []
        for i in range(small + 1):
            r, rec = sl.run(work / "dag7.toml", state)
            hits = sum(1 for s in rec["stages"] if s.get("cache") == "hit")
            if hits != 7:
                raise RuntimeError(f"cached re-run: expected 7 cache hits, got {hits}")
            if i:
                walls.append(r["wall_s"] * 1000)
                rss.append(r["rss_mib"])
        S["dag7_cached"] = {"wall_ms": bl.summary(walls), "rss_mib": bl.summary(rss)}
        load["after"] = bl.loadavg()[0]
        S["small_load"] = load
        # Peak RSS of the small runs without the harness floor (GNU time as the parent).
        S["rss_via_time_mib"] = {
            "version": bl.peak_rss_via_time([str(binary), "--version"]),
            "cold_start_1_stage": bl.peak_rss_via_time(
                [str(binary), "--state-dir", str(sl.fresh_state()), "run", str(work / "one.toml"), "--json"], cwd=work),
            "dag7_cold": bl.peak_rss_via_time(
                [str(binary), "--state-dir", str(sl.fresh_state()), "run", str(work / "dag7.toml"), "--json"], cwd=work),
            "dag7_cached": bl.peak_rss_via_time(
                [str(binary), "--state-dir", str(state), "run", str(work / "dag7.toml"), "--json"], cwd=work),
        }
        bl.log(f"small timings done: cold start {bl.fmt(S['cold_start_1_stage']['wall_ms'])} ms, "
               f"cached dag7 {bl.fmt(S['dag7_cached']['wall_ms'])} ms")

        # Large pipelines.
        q = bl.wait_quiet("200-stage pipelines")
        load = {"before": bl.loadavg()[0], "wait": q}
        for n in sorted(sizes):
            S[f"chain{n}"] = cold_series(sl, work / f"chain{n}.toml", n, runs)
            bl.log(f"chain{n}: wall {bl.fmt(S[f'chain{n}']['wall_ms'])} ms, "
                   f"overhead/stage {bl.fmt(S[f'chain{n}']['overhead_per_stage_ms'], digits=3)} ms")
        S["chain200_jobs1"] = cold_series(sl, work / "chain200.toml", 200, runs, ["--jobs", "1"])
        S["fanout200_jobs1"] = cold_series(sl, work / "fanout200.toml", 200, runs, ["--jobs", "1"])
        S["fanout200_default_jobs"] = cold_series(sl, work / "fanout200.toml", 200, runs)
        bl.log(f"fanout200 jobs1: overhead/stage {bl.fmt(S['fanout200_jobs1']['overhead_per_stage_ms'], digits=3)} ms")
        load["after"] = bl.loadavg()[0]
        S["large_load"] = load

        # Kedro.
        ok, info = kedro_available()
        if args.no_kedro or not ok:
            res["kedro"] = {"skipped": "--no-kedro" if args.no_kedro else f"kedro not importable: {info}"}
        else:
            import kedro_peer

            proj = kedro_peer.generate_project(work / "kedro-project", work / "tiny.csv",
                                               ["one", "dag7", "chain200", "fanout200"], info)
            K = {"version": info}
            q = bl.wait_quiet("kedro")
            load = {"before": bl.loadavg()[0], "wait": q}
            K["run_one"] = kedro_series(proj, "one", small)
            K["run_dag7"] = kedro_series(proj, "dag7", small)
            K["run_chain200"] = kedro_series(proj, "chain200", runs)
            K["run_fanout200"] = kedro_series(proj, "fanout200", runs)
            K["inproc_chain200"] = kedro_inproc("chain", 200, work / "tiny.csv", runs)
            K["inproc_fanout200"] = kedro_inproc("fanout", 200, work / "tiny.csv", runs)
            K["inproc_dag7"] = kedro_inproc("dag7", 7, work / "tiny.csv", small)
            load["after"] = bl.loadavg()[0]
            K["load"] = load
            res["kedro"] = K

    bl.save("runner_overhead", res)
    print(report(res))


def report(res: dict) -> str:
    S, K = res["series"], res.get("kedro", {})
    f = bl.fmt
    lines = [
        f"harness peak RSS (floor of every RSS figure): {res.get('harness_rss_mib', 0):.1f} MiB",
        f"sluice: {res['sluice_version']} ({res['machine']['sluice_bin']}, built {res['binary']['built']}), commit {res['machine']['git_commit']}",
        f"load1 small timings: {S['small_load']['before']:.2f} → {S['small_load']['after']:.2f}; "
        f"200-stage: {S['large_load']['before']:.2f} → {S['large_load']['after']:.2f}"
        + (f"; kedro: {K['load']['before']:.2f} → {K['load']['after']:.2f}" if "load" in K else ""),
        "",
        "| measurement | target | sluice, median (min–max) | Kedro, median (min–max) |",
        "|---|---|---|---|",
        f"| `--version` (process floor) | — | {f(S['version']['wall_ms'])} ms | — |",
        f"| cold start, 1-stage run | < 30 ms | {f(S['cold_start_1_stage']['wall_ms'])} ms | "
        + (f"{f(K['run_one']['wall_ms'], digits=0)} ms (`kedro run`, 1 node)" if "run_one" in K else "—") + " |",
        f"| 7-stage DAG, cold run | — | {f(S['dag7_cold']['wall_ms'])} ms | "
        + (f"{f(K['run_dag7']['wall_ms'], digits=0)} ms (`kedro run`); {f(K['inproc_dag7']['run_ms'])} ms in-process runner" if "run_dag7" in K else "—") + " |",
        f"| 7-stage DAG, fully cached re-run | < 50 ms | {f(S['dag7_cached']['wall_ms'])} ms | no cache (re-runs every node) |",
    ]
    for name, label in [("chain200", "chain 200, default jobs"), ("chain200_jobs1", "chain 200, `--jobs 1`"),
                        ("fanout200_jobs1", "fan-out 200, `--jobs 1`"), ("fanout200_default_jobs", "fan-out 200, default jobs")]:
        s = S[name]
        kk = K.get("run_" + name.split("_")[0])
        ki = K.get("inproc_" + name.split("_")[0])
        peer = "—"
        if kk:
            peer = (f"{f(kk['wall_ms'], digits=0)} ms `kedro run` = {kk['wall_ms']['median'] / 200:.2f} ms/node; "
                    f"in-process runner {f(ki['per_node_ms'], digits=2)} ms/node")
        lines.append(f"| {label}: wall | — | {f(s['wall_ms'])} ms | {peer} |")
        lines.append(f"| {label}: wall / 200 | < 1 ms | {f(s['per_stage_ms'], digits=2)} ms | |")
        lines.append(f"| {label}: (wall − Σ stage ms) / 200 | < 1 ms | {f(s['overhead_per_stage_ms'], digits=3)} ms | |")
    rss = [("sluice --version", S["version"]), ("sluice 1-stage cold", S["cold_start_1_stage"]),
           ("sluice 7-stage cold", S["dag7_cold"]), ("sluice 7-stage cached", S["dag7_cached"]),
           ("sluice chain 200", S["chain200"]), ("sluice fan-out 200 default jobs", S["fanout200_default_jobs"])]
    rss += [(f"kedro run {p}", K[f"run_{p}"]) for p in ("one", "dag7", "chain200", "fanout200") if f"run_{p}" in K]
    lines += ["", "Peak RSS, MiB: " + "; ".join(f"{n} {f(x['rss_mib'], digits=0)}" for n, x in rss)]
    rt = S.get("rss_via_time_mib") or {}
    if rt:
        lines += ["", "Peak RSS under GNU time (no harness floor), MiB: "
                  + "; ".join(f"{k} {v:.1f}" for k, v in rt.items() if v is not None)]
    lines += ["", "Chain scaling (cold, default jobs):", "",
              "| stages | wall ms | wall/N ms | (wall − Σ stage)/N ms | Σ stage ms | median stage ms | outside executor ms | median hand-off ms | median gap between stages ms |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted((k for k in S if k.startswith("chain") and k[5:].isdigit()), key=lambda k: int(k[5:])):
        s = S[key]
        gap = f(s["median_gap_between_stages_ms"], digits=3) if s["median_gap_between_stages_ms"] else "—"
        lines.append(f"| {s['stages']} | {f(s['wall_ms'])} | {f(s['per_stage_ms'], digits=2)} | "
                     f"{f(s['overhead_per_stage_ms'], digits=3)} | {f(s['stage_duration_sum_ms'])} | "
                     f"{f(s['median_stage_duration_ms'], digits=2)} | {f(s['outside_executor_ms'])} | "
                     f"{f(s['median_launch_ms'], digits=3)} | {gap} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
