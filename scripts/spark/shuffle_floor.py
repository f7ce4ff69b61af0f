#!/usr/bin/env python3
"""The least work any Spark diff of a partitions tree must do, and nothing more: read each
row's 64-bit key fingerprint and its backup, shuffle the rows by fingerprint and sort them
within it by backup (how a key meets its predecessor in the backup before), then count.
No key column is checked, no value compared, nothing written. `scripts/bench-spark` times
it beside the real job (scripts/spark/migrate_diff.py): its CPU per row is a floor under
any Spark job that pairs rows across backups.

    spark-submit --master URL scripts/spark/shuffle_floor.py --partitions WORK/partitions \\
        --result UNUSED
"""
import argparse
import os
import time

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

FINGERPRINT = "__key_fingerprint"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", required=True)
    # Accepted so that the bench calls it as it calls the real job; nothing is written.
    parser.add_argument("--result")
    args = parser.parse_args()
    started = time.time()
    spark = SparkSession.builder.appName("migrate shuffle floor").getOrCreate()
    frames = []
    dates = sorted(d for d in os.listdir(args.partitions) if d.startswith("date="))
    for index, date in enumerate(dates):
        path = os.path.join(args.partitions, date)
        frames.append(
            spark.read.parquet(path).select(F.col(FINGERPRINT), F.lit(index).alias("b"))
        )
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    # What the real job's first pass does at the least: group by fingerprint, order by backup.
    before = F.lag("b").over(Window.partitionBy(FINGERPRINT).orderBy("b"))
    paired = rows.select(before.isNotNull().alias("paired")).where("paired").count()
    spark.stop()
    print("paired %d rows in %.1f s" % (paired, time.time() - started))


if __name__ == "__main__":
    main()
