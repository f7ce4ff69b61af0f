"""The polars (Python) baseline of scripts/bench (run with the venv's python).

  bench-polars.py dumps BACKUPS_DIR OUT_DIR

A whole pipeline over the dumps, the same job as `bench-duckdb.py dumps`: `gzip -dc | sed`
turns each backup's covidcast rows into CSV, polars reads it, diffs it against the previous
backup by key (NULL = NULL and NaN = NaN on the compared columns), and writes the issue rows
(new or changed) and the removed keys to CSV files, one pair per backup.
"""
import os
import shutil
import subprocess
import sys

import polars as pl

KEY = ["source", "signal", "time_type", "geo_type", "time_value", "geo_value"]
COLUMNS = {
    "id": pl.Int64, "source": pl.String, "signal": pl.String, "time_type": pl.String,
    "geo_type": pl.String, "time_value": pl.Int64, "geo_value": pl.String,
    "value_updated_timestamp": pl.Int64, "value": pl.Float64, "stderr": pl.Float64,
    "sample_size": pl.Float64, "direction_updated_timestamp": pl.Int64, "direction": pl.Int64,
}
OLD = "__old"


def read_backup(path, rows_file):
    """The covidcast rows of one backup, without `id`. polars' CSV reader has no backslash
    escapes: a backup whose rows hold one is refused rather than read wrong."""
    # One row per line in mariadb-dump's INSERTs, parentheses stripped, SQL quoting kept.
    rows = "/^INSERT INTO `covidcast` VALUES$/,/;$/{s/^(//;s/)[,;]$//p}"
    subprocess.run("gzip -dc '%s' | sed -n '%s' > '%s'" % (path, rows, rows_file),
                   shell=True, check=True)
    with open(rows_file, "rb") as f:
        if b"\\" in f.read():
            sys.exit("%s: a row holds a backslash escape, which this baseline cannot read" % path)
    frame = pl.read_csv(rows_file, has_header=False, new_columns=list(COLUMNS),
                        schema=COLUMNS, quote_char="'", null_values="NULL")
    os.remove(rows_file)
    return frame.drop("id")


def diff(old, new):
    """(issue rows of `new`, removed keys of `old`), both sorted by key."""
    if old is None:
        return new.sort(KEY), new.select(KEY).clear()
    compared = [c for c in new.columns if c not in KEY]
    joined = new.join(old.with_columns(pl.lit(True).alias("__in_old")), on=KEY, how="left",
                      suffix=OLD, nulls_equal=True)
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c + OLD)) for c in compared)
    issues = (joined.filter(pl.col("__in_old").is_null() | differs)
              .select(new.columns).sort(KEY))
    removed = old.join(new, on=KEY, how="anti", nulls_equal=True).select(KEY).sort(KEY)
    return issues, removed


def dumps(root, out):
    previous = None
    for name in sorted(f for f in os.listdir(root) if f.endswith(".sql.gz")):
        date = name.split("_")[2]
        current = read_backup(os.path.join(root, name), os.path.join(out, date + ".rows"))
        issues, removed = diff(previous, current)
        issues.write_csv(os.path.join(out, date + ".csv"))
        removed.write_csv(os.path.join(out, date + ".removed.csv"))
        previous = current


if __name__ == "__main__":
    mode, source, out = sys.argv[1:4]
    if mode != "dumps":
        sys.exit("usage: bench-polars.py dumps BACKUPS_DIR OUT_DIR")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    dumps(source, out)
