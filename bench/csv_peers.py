"""One CSV-reading peer per process, for bench/csv_collect.py (so peak RSS is per peer).

    python csv_peers.py MODE CSV OUT_DIR

MODE is one of: pandas_read, pandas_parquet, polars_read, polars_parquet, pyarrow_read,
pyarrow_parquet. Prints one JSON line: mode, rows, seconds spent after imports
(`work_s`), and the output file size when a Parquet file is written. Every mode uses the
library's default CSV options, except polars: its default type inference looks at 100
rows, types InvoiceNo as i64 and fails at line 8318 (`C537132`), so it gets
`infer_schema_length=10000`, the same sample size as sluice's csv connector default.
Parquet is written with zstd.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

POLARS_INFER = 10_000


def main() -> None:
    mode, csv, out_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    out = out_dir / f"{mode}.parquet"
    t_import = time.perf_counter()
    if mode.startswith("pandas"):
        import pandas as pd
    elif mode.startswith("polars"):
        import polars as pl
    elif mode.startswith("pyarrow"):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    else:
        sys.exit(f"unknown mode {mode}")
    t0 = time.perf_counter()
    if mode == "pandas_read":
        rows = len(pd.read_csv(csv))
    elif mode == "pandas_parquet":
        df = pd.read_csv(csv)
        df.to_parquet(out, compression="zstd")
        rows = len(df)
    elif mode == "polars_read":
        rows = pl.read_csv(csv, infer_schema_length=POLARS_INFER).height
    elif mode == "polars_parquet":
        df = pl.read_csv(csv, infer_schema_length=POLARS_INFER)
        df.write_parquet(out, compression="zstd")
        rows = df.height
    elif mode == "pyarrow_read":
        rows = pacsv.read_csv(csv).num_rows
    elif mode == "pyarrow_parquet":
        t = pacsv.read_csv(csv)
        pq.write_table(t, out, compression="zstd")
        rows = t.num_rows
    work = time.perf_counter() - t0
    print(json.dumps({
        "mode": mode,
        "rows": rows,
        "import_s": t0 - t_import,
        "work_s": work,
        "parquet_bytes": out.stat().st_size if out.exists() else None,
    }))


if __name__ == "__main__":
    main()
