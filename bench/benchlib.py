"""Shared helpers for the Sluice side-by-side benchmarks (see bench/README.md).

Nothing here is specific to one benchmark: locating the repo, the `sluice` binary and the
data; waiting until the machine is quiet; timing a subprocess (wall time and its own peak
RSS via wait4); medians; machine facts; and writing results to bench/out/.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"


def sluice_bin() -> Path:
    """`$SLUICE_BIN`, else `$CARGO_TARGET_DIR/bench-fast/sluice`, else `<repo>/target/bench-fast/sluice`."""
    if os.environ.get("SLUICE_BIN"):
        return Path(os.environ["SLUICE_BIN"]).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return (target / "bench-fast" / "sluice").resolve()


def retail_csv() -> Path:
    """`$SLUICE_RETAIL_CSV`, else `../shared/data/online-retail/online_retail.csv` from the repo root."""
    p = os.environ.get("SLUICE_RETAIL_CSV")
    if p:
        return Path(p).resolve()
    return (REPO / ".." / "shared" / "data" / "online-retail" / "online_retail.csv").resolve()


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


def busy_compilers() -> list[str]:
    """Names of rustc/cargo processes currently running (any user)."""
    out = subprocess.run(["pgrep", "-l", "-x", "rustc|cargo"], capture_output=True, text=True)
    return out.stdout.split()[1::2]


def wait_quiet(label: str, max_wait_s: float = 1200.0, poll_s: float = 15.0, max_load: float = 1.0) -> dict:
    """Waits until no rustc/cargo runs and the 1-minute load average is below `max_load`.

    Polls every `poll_s` seconds for at most `max_wait_s`. Returns what was seen, so the
    result can say whether the series ran on a quiet machine. `BENCH_NO_WAIT=1` skips it.
    """
    t0 = time.monotonic()
    if os.environ.get("BENCH_NO_WAIT") == "1":
        return {"waited_s": 0.0, "quiet": None, "load1": loadavg()[0], "compilers": busy_compilers()}
    while True:
        comp = busy_compilers()
        l1 = loadavg()[0]
        waited = time.monotonic() - t0
        if not comp and l1 < max_load:
            log(f"[{label}] machine quiet (load1 {l1:.2f}) after {waited:.0f} s")
            return {"waited_s": round(waited, 1), "quiet": True, "load1": l1, "compilers": []}
        if waited >= max_wait_s:
            log(f"[{label}] gave up waiting after {waited:.0f} s: load1 {l1:.2f}, compilers {comp}")
            return {"waited_s": round(waited, 1), "quiet": False, "load1": l1, "compilers": comp}
        log(f"[{label}] waiting: load1 {l1:.2f}, compilers running: {len(comp)}")
        time.sleep(poll_s)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_timed(cmd: list[str], cwd: Path | None = None, env: dict | None = None, check: bool = True) -> dict:
    """Runs `cmd`; returns wall seconds, the child's peak RSS (MiB), exit code, stdout, stderr.

    Peak RSS comes from wait4() on this child only, so each measurement is per process.
    Caveat: Linux starts a child's peak RSS at the RSS of the process that forked it (the
    pre-exec copy is counted), so the figure is max(harness RSS, child's own peak). The
    harness therefore keeps itself small (no pandas/kedro imports, no large reads) and
    records its own peak RSS as `harness_rss_mib`: a figure at that value means "at most".
    """
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # communicate() drains the pipes; then wait4 reaps the child and gives its rusage.
    out, err = _drain(p)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd} exited {p.returncode}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-4000:]}")
    return {"wall_s": wall, "rss_mib": ru.ru_maxrss / 1024.0, "code": p.returncode, "stdout": out, "stderr": err,
            "user_s": ru.ru_utime, "sys_s": ru.ru_stime}


def peak_rss_via_time(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> float | None:
    """Peak RSS (MiB) of `cmd` launched by GNU time (/usr/bin/time), a small process, so the
    figure is not floored by the harness's own RSS. One untimed run; None if GNU time is
    missing."""
    import tempfile as _tf

    if not Path("/usr/bin/time").is_file():
        return None
    with _tf.NamedTemporaryFile("r", suffix=".rss") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], cwd=cwd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        text = Path(out.name).read_text().strip().splitlines()
    return int(text[-1]) / 1024.0 if text else None


def _drain(p: subprocess.Popen) -> tuple[str, str]:
    """Reads stdout and stderr to EOF without reaping the child (so wait4 still can)."""
    import threading

    chunks: dict[str, bytes] = {}

    def read(name, f):
        chunks[name] = f.read()
        f.close()

    t = threading.Thread(target=read, args=("err", p.stderr))
    t.start()
    read("out", p.stdout)
    t.join()
    return chunks["out"].decode(errors="replace"), chunks["err"].decode(errors="replace")


def summary(values: list[float]) -> dict:
    """Median, min, max and n of a series."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(s: dict, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """`median (min–max)` with the given scale (e.g. 1000 for seconds → ms)."""
    m, lo, hi = s["median"] * scale, s["min"] * scale, s["max"] * scale
    return f"{m:.{digits}f}{unit} ({lo:.{digits}f}–{hi:.{digits}f})"


def machine() -> dict:
    """nproc, RAM, CPU model, kernel, date, git commit, tool versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "mem_gib": mem_gib,
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": commit.stdout.strip() if commit.returncode == 0 else "none (no commits yet)",
        "git_dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None,
        "sluice_bin": str(sluice_bin()),
    }


def harness_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def save(name: str, data: dict) -> Path:
    data["harness_rss_mib"] = harness_rss_mib()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    log(f"results written to {path}")
    return path


def snapshot_binary(binary: Path, into: Path) -> tuple[Path, dict]:
    """Copies the binary into `into` and returns the copy, so a rebuild of the original
    during a long series (others share the target dir) cannot mix two versions."""
    import hashlib
    import shutil

    dst = into / "sluice"
    shutil.copy2(binary, dst)
    hasher = hashlib.blake2b(digest_size=8)
    with open(dst, "rb") as f:  # in chunks: the harness must stay small (see run_timed)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    h = hasher.hexdigest()
    info = {"source": str(binary), "built": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(binary.stat().st_mtime)),
            "blake2b": h, "bytes": dst.stat().st_size}
    return dst, info


def require_binary() -> Path:
    b = sluice_bin()
    if not b.is_file():
        sys.exit(
            f"sluice binary not found at {b}. Build it with\n"
            f"  cd {REPO} && cargo build --profile bench-fast --bin sluice\n"
            f"or point SLUICE_BIN at it."
        )
    return b
