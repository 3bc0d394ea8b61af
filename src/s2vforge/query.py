"""SQL over a dataset's tables with DuckDB's Python package (no `duckdb` executable needed).

    s2vforge query DATASET "select status, count(*) from videos group by 1"

Every DATASET/<table>.parquet is a view named after the table (videos, clips, subjects, pairs,
...), so queries read like the data model; a file path in quotes works too.
"""
from __future__ import annotations

import datetime
import decimal
from pathlib import Path


class QueryError(ValueError):
    """A query DuckDB refused (a typo, an unknown table or column)."""


def dataset_tables(dataset: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(dataset).glob("*.parquet"))}


def run_query(dataset: Path, sql: str, limit: int | None = None) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of `sql` over the dataset's tables."""
    import duckdb
    tables = dataset_tables(dataset)
    if not tables:
        raise QueryError(f"{dataset} holds no tables (*.parquet): run `s2vforge curate ... --out {dataset}` first")
    con = duckdb.connect(":memory:")
    try:
        for name, path in tables.items():
            quoted_name, quoted_path = name.replace('"', '""'), str(path).replace("'", "''")
            con.execute(f"create view \"{quoted_name}\" as select * from read_parquet('{quoted_path}')")
        try:
            rel = con.sql(sql)
        except duckdb.Error as e:
            raise QueryError(f"{type(e).__name__}: {e}".splitlines()[0] +
                             f" (tables: {', '.join(tables)})") from None
        if rel is None:          # a statement without a result (set, pragma)
            return [], []
        cols = list(rel.columns)
        rows = rel.fetchall() if limit is None else rel.limit(limit).fetchall()
        return cols, rows
    finally:
        con.close()


def jsonable(value):
    """A DuckDB value as plain JSON (lists, structs, timestamps and decimals included)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value
