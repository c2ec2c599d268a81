"""Kedro peer for bench/runner_overhead.py.

Two ways to run the same trivial pipelines in Kedro:

* `generate_project(dir, csv)` writes a minimal Kedro project (pyproject.toml with
  [tool.kedro], settings, a pipeline registry, empty conf/) whose registry holds the
  pipelines `one` (1 node), `dag7` (7 nodes, the same DAG shape as Sluice's 7-stage
  benchmark pipeline), `chain<N>` and `fanout<N>`. `kedro run --pipeline NAME` in that
  directory is a full run: interpreter start, imports, session creation, catalog, runner.
  Datasets between nodes are Kedro's default MemoryDataset (nothing is written to disk).

* `python kedro_peer.py inproc SHAPE N CSV [REPEATS]` builds the pipeline in-process and
  times only `SequentialRunner().run(pipeline, catalog)` (no session, no interpreter start),
  printing JSON: the runner's own per-node cost without process start-up.

Used by runner_overhead.py; not meant to be run on its own except for debugging.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

PACKAGE = "sluicebench"

NODES_PY = '''
"""Trivial pandas node functions (the Kedro counterpart of `SELECT * FROM x`)."""
import pandas as pd


def load(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def passthrough(df: pd.DataFrame) -> pd.DataFrame:
    return df


def pick_value(df):
    return df[["id", "value"]]


def pick_name(df):
    return df[["id", "name"]]


def join(a, b):
    return a.merge(b, on="id")


def total_by_name(c):
    return c.groupby("name", as_index=False)["value"].sum().rename(columns={"value": "total"})


def count(c):
    return pd.DataFrame({"n": [len(c)]})


def cross(d, e):
    return d.merge(e, how="cross")
'''


def pipelines_source(csv: str) -> str:
    return textwrap.dedent(
        f'''
        """Pipelines for the benchmark: built from the node functions in nodes.py."""
        from kedro.pipeline import Pipeline, node

        from .nodes import count, cross, join, load, passthrough, pick_name, pick_value, total_by_name

        CSV = {csv!r}


        def chain(n: int) -> Pipeline:
            nodes = [node(load, "params:csv", "d0", name="s0")]
            nodes += [node(passthrough, f"d{{i - 1}}", f"d{{i}}", name=f"s{{i}}") for i in range(1, n)]
            return Pipeline(nodes)


        def fanout(n: int) -> Pipeline:
            nodes = [node(load, "params:csv", "src", name="src")]
            nodes += [node(passthrough, "src", f"f{{i}}", name=f"f{{i}}") for i in range(1, n)]
            return Pipeline(nodes)


        def dag7() -> Pipeline:
            return Pipeline([
                node(load, "params:csv", "src", name="src"),
                node(pick_value, "src", "a", name="a"),
                node(pick_name, "src", "b", name="b"),
                node(join, ["a", "b"], "c", name="c"),
                node(total_by_name, "c", "d", name="d"),
                node(count, "c", "e", name="e"),
                node(cross, ["d", "e"], "f", name="f"),
            ])


        def build(name: str) -> Pipeline:
            if name == "one":
                return chain(1)
            if name == "dag7":
                return dag7()
            if name.startswith("chain"):
                return chain(int(name[5:]))
            if name.startswith("fanout"):
                return fanout(int(name[6:]))
            raise KeyError(name)
        '''
    )


def generate_project(root: Path, csv: Path, names: list[str], kedro_version: str) -> Path:
    """Writes a minimal Kedro project into `root` with the pipelines `names`."""
    pkg = root / "src" / PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    (root / "conf" / "base").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "local").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "base" / "catalog.yml").write_text("{}\n")
    (root / "conf" / "base" / "parameters.yml").write_text(f"csv: {json.dumps(str(csv))}\n")
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [tool.kedro]
            package_name = "{PACKAGE}"
            project_name = "sluice-bench"
            kedro_init_version = "{kedro_version}"
            source_dir = "src"
            """
        )
    )
    # Explicit telemetry opt-out (also set in the environment by the harness).
    (root / ".telemetry").write_text("consent: false\n")
    (pkg / "__init__.py").write_text('__version__ = "0.1"\n')
    (pkg / "settings.py").write_text("")
    (pkg / "nodes.py").write_text(NODES_PY)
    (pkg / "bench_pipelines.py").write_text(pipelines_source(str(csv)))
    (pkg / "pipeline_registry.py").write_text(
        textwrap.dedent(
            f"""
            from .bench_pipelines import build


            def register_pipelines():
                names = {names!r}
                pipes = {{n: build(n) for n in names}}
                pipes["__default__"] = pipes[names[0]]
                return pipes
            """
        )
    )
    return root


def inproc(shape: str, n: int, csv: str, repeats: int) -> dict:
    """Times SequentialRunner.run on a `shape` pipeline of `n` nodes, in this process."""
    import importlib.util
    import logging
    import tempfile

    logging.disable(logging.INFO)  # the runner logs each node; keep the terminal out of it
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "bench_pipelines.py"
        nodes = Path(d) / "nodes.py"
        nodes.write_text(NODES_PY)
        p.write_text(pipelines_source(csv).replace("from .nodes", "from nodes"))
        sys.path.insert(0, d)
        spec = importlib.util.spec_from_file_location("bench_pipelines", p)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        name = {"chain": f"chain{n}", "fanout": f"fanout{n}", "dag7": "dag7", "one": "one"}[shape]
        times = []
        for _ in range(repeats + 1):  # first is warm-up
            pipe = mod.build(name)
            catalog = DataCatalog({"params:csv": MemoryDataset(csv)})
            t0 = time.perf_counter()
            SequentialRunner().run(pipe, catalog)
            times.append(time.perf_counter() - t0)
        return {"shape": shape, "nodes": len(mod.build(name).nodes), "times_s": times[1:], "warmup_s": times[0]}


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "inproc":
        rep = int(sys.argv[5]) if len(sys.argv) > 5 else 5
        print(json.dumps(inproc(sys.argv[2], int(sys.argv[3]), sys.argv[4], rep)))
    else:
        sys.exit(__doc__)
