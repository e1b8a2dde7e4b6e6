"""Reading and writing marts: one file per asset and day (`MARTS/<asset>/date=YYYY-MM-DD/part.parquet`)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from services.lake import mart_dir, mart_partition_path, tmp_path


def write_mart_partition(marts: Path, asset: str, day: date, table: pa.Table) -> Path:
    """Replace the day's file whole: written under a hidden temporary name, then renamed, so readers never
    see half a file and rematerialising a partition is idempotent (same input, same file)."""
    final = mart_partition_path(marts, asset, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(final)
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, final)
    return final


def mart_files(marts: Path, asset: str, day: date | None) -> list[str]:
    """The day's file, or every day's when `day` is None (a check run outside a partitioned run)."""
    if day is not None:
        files = [mart_partition_path(marts, asset, day)]
    else:
        files = sorted(mart_dir(marts, asset).glob("date=*/*.parquet"))
    found = [str(f) for f in files if f.exists()]
    if not found:
        scope = day.isoformat() if day is not None else "any day"
        raise dg.Failure(description=f"mart {asset} has no partition for {scope} under {marts}")
    return found


def query_mart(marts: Path, asset: str, day: date | None, sql: str) -> list[tuple[object, ...]]:
    """Run `sql` over the mart's rows for `day` (all days when None), visible as the view `part`."""
    con = duckdb.connect()
    try:
        con.read_parquet(mart_files(marts, asset, day)).create_view("part")
        return con.sql(sql).fetchall()
    finally:
        con.close()


def checked_day(context: dg.AssetCheckExecutionContext) -> date | None:
    """The partition a check runs for; None when it runs on its own, which checks every day."""
    return date.fromisoformat(context.partition_key) if context.has_partition_key else None
