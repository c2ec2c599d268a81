#!/usr/bin/env python3
"""The retail RFM job in pandas or polars, one process per run (called by retail_rfm.py).

    rfm_peers.py pandas|polars CSV OUT_PARQUET

Read the Online Retail CSV → drop rows without CustomerID → drop exact duplicate rows →
keep Quantity > 0 → per customer: recency (whole days from the customer's last invoice to
the reference time, one day after the latest invoice in the data, rounded down — the
usual "snapshot = max + 1 day" convention),
frequency (distinct invoices), monetary (sum of Quantity × UnitPrice) → Parquet.

Prints one JSON line: {"work_s": seconds after imports, "rows": customers, per-step counts}.
"""

from __future__ import annotations

import json
import sys
import time


def run_pandas(csv: str, out: str) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(csv, dtype={"InvoiceNo": str, "StockCode": str})
    counts = {"raw": len(df)}
    df = df.dropna(subset=["CustomerID"])
    counts["customer"] = len(df)
    df = df.drop_duplicates()
    counts["dedup"] = len(df)
    df = df[df["Quantity"] > 0]
    counts["quantity"] = len(df)
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    df["amount"] = df["Quantity"] * df["UnitPrice"]
    reference = df["InvoiceDate"].max() + pd.Timedelta(days=1)
    g = df.groupby("CustomerID")
    rfm = pd.DataFrame({
        "recency": (reference - g["InvoiceDate"].max()).dt.days,
        "frequency": g["InvoiceNo"].nunique(),
        "monetary": g["amount"].sum(),
    }).reset_index()
    rfm.to_parquet(out, compression="zstd", index=False)
    return {"work_s": time.perf_counter() - t0, "rows": len(rfm), "counts": counts}


def run_polars(csv: str, out: str) -> dict:
    import polars as pl

    t0 = time.perf_counter()
    df = pl.read_csv(csv, schema_overrides={"InvoiceNo": pl.Utf8, "StockCode": pl.Utf8})
    counts = {"raw": df.height}
    df = df.drop_nulls(subset=["CustomerID"])
    counts["customer"] = df.height
    df = df.unique(maintain_order=True)
    counts["dedup"] = df.height
    df = df.filter(pl.col("Quantity") > 0)
    counts["quantity"] = df.height
    df = df.with_columns(
        pl.col("InvoiceDate").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S"),
        (pl.col("Quantity") * pl.col("UnitPrice")).alias("amount"),
    )
    import datetime as dt

    reference = df["InvoiceDate"].max() + dt.timedelta(days=1)
    rfm = (
        df.group_by("CustomerID")
        .agg(
            pl.col("InvoiceDate").max().alias("last"),
            pl.col("InvoiceNo").n_unique().alias("frequency"),
            pl.col("amount").sum().alias("monetary"),
        )
        .with_columns((pl.lit(reference) - pl.col("last")).dt.total_days().alias("recency"))
        .select("CustomerID", "recency", "frequency", "monetary")
        .sort("CustomerID")
    )
    rfm.write_parquet(out, compression="zstd")
    return {"work_s": time.perf_counter() - t0, "rows": rfm.height, "counts": counts}


if __name__ == "__main__":
    mode, csv, out = sys.argv[1:4]
    result = {"pandas": run_pandas, "polars": run_polars}[mode](csv, out)
    print(json.dumps(result))
