"""The DuckDB baselines of scripts/bench (run with the venv's python).

  bench-duckdb.py partitions PARTITIONS_DIR OUT_DIR
      the diff migrate does, per source and pair of backups, over migrate's own partitions
  bench-duckdb.py dumps BACKUPS_DIR OUT_DIR
      a whole pipeline over the dumps: gzip -dc | grep | sed into CSV, DuckDB diffs the backups
"""
import json
import os
import shutil
import subprocess
import sys

import duckdb

KEY = ["source", "signal", "time_type", "geo_type", "time_value", "geo_value"]
TYPES = {"Integer": "BIGINT", "Float": "DOUBLE", "Text": "VARCHAR"}


def q(name):
    return '"%s"' % name


def diff(con, old, new, columns, issues_path, removals_path):
    """Issue rows of `new` against `old` (tables or None), and removed keys, to CSV files."""
    compared = [c for c in columns if c not in KEY]
    on = " AND ".join("n.%s IS NOT DISTINCT FROM o.%s" % (q(k), q(k)) for k in KEY)
    differs = " OR ".join("n.%s IS DISTINCT FROM o.%s" % (q(c), q(c)) for c in compared)
    order = ", ".join("n.%s" % q(k) for k in KEY)
    if old is None:
        con.execute("COPY (SELECT * FROM %s n ORDER BY %s) TO '%s' (HEADER)" % (new, order, issues_path))
        return
    con.execute(
        "COPY (SELECT n.* FROM %s n LEFT JOIN %s o ON %s WHERE o.%s IS NULL OR %s ORDER BY %s) "
        "TO '%s' (HEADER)" % (new, old, on, q("source"), differs, order, issues_path))
    keys = ", ".join("o.%s" % q(k) for k in KEY)
    con.execute(
        "COPY (SELECT %s FROM %s o ANTI JOIN %s n ON %s ORDER BY %s) TO '%s' (HEADER)"
        % (keys, old, new, on, keys, removals_path))


def partitions(root, out):
    """The partitions tree migrate writes: date=YYYYMMDD/<source>.parquet (or .csv)."""
    con = duckdb.connect()
    dates = sorted(d[len("date="):] for d in os.listdir(root) if d.startswith("date="))
    previous = None
    for date in dates:
        folder = os.path.join(root, "date=" + date)
        info = json.load(open(os.path.join(folder, "_partitions.json")))
        columns = [c for c in info["table"]["columns"] if c["name"] != "id"]
        types = "{%s}" % ", ".join("'%s': '%s'" % (c["name"], TYPES[c["kind"]]) for c in columns)
        names = [c["name"] for c in columns]
        extension = info["inputs"]["file_format"]
        stems = {p["stem"] for p in info["partitions"]}
        if previous:
            stems |= previous[1]
        os.makedirs(os.path.join(out, date), exist_ok=True)
        for stem in sorted(stems):
            def table(d, s):
                path = os.path.join(root, "date=" + d, s + "." + extension)
                if not os.path.exists(path):  # the source is absent from that backup
                    return "(SELECT %s WHERE false)" % ", ".join(
                        "NULL::%s AS %s" % (TYPES[c["kind"]], q(c["name"])) for c in columns)
                if extension == "parquet":
                    return "read_parquet('%s', hive_partitioning = false)" % path
                return ("read_csv('%s', columns=%s, header=true, nullstr='', "
                        "allow_quoted_nulls=false)" % (path, types))
            old = table(previous[0], stem) if previous else None
            diff(con, old, table(date, stem), names,
                 os.path.join(out, date, stem + ".csv"), os.path.join(out, date, stem + ".removed.csv"))
        previous = (date, {p["stem"] for p in info["partitions"]})


def dumps(root, out):
    con = duckdb.connect()
    columns = ["id", "source", "signal", "time_type", "geo_type", "time_value", "geo_value",
               "value_updated_timestamp", "value", "stderr", "sample_size",
               "direction_updated_timestamp", "direction"]
    kinds = ["BIGINT"] + ["VARCHAR"] * 4 + ["BIGINT", "VARCHAR", "BIGINT", "DOUBLE", "DOUBLE",
                                             "DOUBLE", "BIGINT", "BIGINT"]
    types = "{%s}" % ", ".join("'%s': '%s'" % c for c in zip(columns, kinds))
    os.makedirs(out, exist_ok=True)
    previous = None
    for name in sorted(f for f in os.listdir(root) if f.endswith(".sql.gz")):
        date = name.split("_")[2]
        csv = os.path.join(out, date + ".rows")
        # One row per line in mariadb-dump's INSERTs: the rows of the covidcast table's
        # INSERTs (other tables are skipped), parentheses stripped, SQL quoting kept.
        rows = "/^INSERT INTO `covidcast` VALUES$/,/;$/{s/^(//;s/)[,;]$//p}"
        subprocess.run("gzip -dc '%s' | sed -n '%s' > '%s'"
                       % (os.path.join(root, name), rows, csv), shell=True, check=True)
        con.execute("CREATE OR REPLACE TABLE b%s AS SELECT * EXCLUDE (id) FROM read_csv('%s', "
                    "columns=%s, header=false, quote='''', escape='\\', nullstr='NULL')"
                    % (date, csv, types))
        os.remove(csv)
        diff(con, "b" + previous if previous else None, "b" + date, columns[1:],
             os.path.join(out, date + ".csv"), os.path.join(out, date + ".removed.csv"))
        if previous:
            con.execute("DROP TABLE b" + previous)
        previous = date


if __name__ == "__main__":
    mode, source, out = sys.argv[1:4]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    {"partitions": partitions, "dumps": dumps}[mode](source, out)
