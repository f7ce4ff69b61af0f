#!/usr/bin/env python3
"""migrate's diff on Apache Spark: the issue rows and removals of every pair of consecutive
backups in a partitions tree written by `migrate extract`, as Parquet that
`migrate emit --from RESULT` turns into the usual output tree, byte for byte what a local run
writes.

    spark-submit --master URL scripts/spark/migrate_diff.py \\
        --partitions WORK/partitions --result RESULT [--key COLS] [--ignore-columns COLS] \\
        [--dates SELECTION]

--partitions and --result take any path Spark can read and write (file:, hdfs://, s3a://).

How it computes the diff, with migrate's semantics (README, Semantics):
  - The backups are the `date=YYYYMMDD` folders of the tree that hold a `_partitions.json`
    (extraction renames a folder into place only when it is complete). Each backup is
    compared with the one before it in date order, so a missing day compares across the gap.
  - Two passes. The first shuffles narrow rows only: the 64-bit fingerprint of the key
    that extraction stores (`__key_fingerprint`), the backup's index, the key columns and
    the compared columns, by the fingerprint; within a fingerprint its rows are sorted by
    date, so a row's predecessor (`lag`) is the same key in an earlier backup. The key
    columns are checked afterwards, as migrate's own diff does: when two keys share a
    fingerprint (or files have none), the job runs again by the key columns. The row is
    new (an issue row, `__added`) when that predecessor is missing or is not from the backup
    just before (a key that appears, or comes back after a removal); otherwise it is an
    issue row when a compared column differs (by the values themselves, never a hash of
    them). A row whose successor (`lead`) is not in the next backup is a removal there,
    with its last values. What the first pass keeps (the key's fingerprint, the backup,
    the row's status and its previous `value`: the changes only) is cached, counted, and
    joined (broadcast when it is small) with the whole rows, read a second time, which
    are neither shuffled nor sorted until they are issue rows or removals. A backup
    diffed with none before it (the first) has every row added: all its rows are kept.
  - Compared columns: every column but the id, the key and --ignore-columns. Equality is
    Spark's null-safe `<=>` on the typed Parquet columns: NULL = NULL, NaN = NaN,
    0.0 = -0.0, numbers by value (they were parsed at extraction; Spark reads `bigint
    unsigned` columns as decimal(20,0)), decimals by their canonical text (equal text is
    equal value), other text exactly.
  - A key twice in one backup fails the job with the key and the date, as migrate does.
The driver reads each backup's small `_partitions.json`, and the first pass's changes pass
through it when they are broadcast (up to BROADCAST_ROWS of them, a few dozen bytes each);
no row of the table is collected there.

The result:
  RESULT/output=issues/date=D/*.parquet    issue rows of the backup of D: every column but
                                           the id (`bigint unsigned` ones as their digits, as
                                           Spark has no unsigned type), `__added` (a new key,
                                           not a revision) and, when `value` is compared,
                                           `value__old`
  RESULT/output=removals/date=D/*.parquet  keys missing from the backup of D, with the
                                           columns of their last row
  RESULT/_job/part-*.txt                   what was computed (key, ignored columns, and per
                                           backup the record of the partitions it read),
                                           written last: `migrate emit` checks it
"""
import argparse
import datetime as dt
import json
import sys
import time

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F
from pyspark import StorageLevel

DEFAULT_KEY = "source,signal,time_type,geo_type,time_value,geo_value"
RECORD = "_partitions.json"
# What `migrate emit` reads: bump on any change of the layout below.
RESULT_FORMAT = 1
# Internal columns; the table's own never start with two underscores.
INDEX = "__index"
BEFORE, AFTER = "__seen_before", "__seen_after"
ISSUE, REMOVAL, FOUND = "__issue", "__removal", "__found"
# Pass 1's changes are broadcast to pass 2 (which then shuffles no whole row but the
# result's) up to this many (about 50 MB on the driver); more are joined by a shuffle of
# every row read.
BROADCAST_ROWS = 1_000_000
ADDED, VALUE, PREVIOUS_VALUE = "__added", "value", "value__old"
# The key's 64-bit fingerprint that extraction stores in each Parquet partition.
FINGERPRINT = "__key_fingerprint"
# The message of a fingerprint shared by two keys: the job then runs again by key columns.
COLLISION = "MIGRATE-COLLISION"


class JobError(Exception):
    """Bad input or arguments: printed as one line, exit status 1."""


def parse_dates(text):
    """`--dates` as migrate reads it: comma-separated YYYYMMDD dates and inclusive ranges
    A..B, A.. or ..B. Returns a predicate on YYYYMMDD strings."""
    ranges = []
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("..")
        if not sep:
            high = low
        for end in (low, high):
            if end:
                try:
                    dt.datetime.strptime(end, "%Y%m%d")
                except ValueError:
                    raise JobError("--dates: %r is not a date YYYYMMDD (in %r)" % (end, text))
        if not (low or high) or (low and high and low > high):
            raise JobError("--dates: %r is not a date or a range A..B of dates" % part)
        ranges.append((low or "00000000", high or "99999999"))
    return lambda date: any(low <= date <= high for low, high in ranges)


def read_records(spark, root):
    """The `_partitions.json` of every backup of the tree, by date. Read through Hadoop's
    file system on the driver (a few KB per backup): Spark's readers skip `_` files."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    pattern = jvm.org.apache.hadoop.fs.Path(root.rstrip("/") + "/date=*/" + RECORD)
    fs = pattern.getFileSystem(conf)
    records = {}
    for status in fs.globStatus(pattern) or []:
        stream = fs.open(status.getPath())
        try:
            text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
        record = json.loads(text)
        records[record["date"]] = record
    return records


def stored_columns(record):
    """Every column of the table but the id, in table order, as the partitions store them."""
    id_column = record["inputs"]["id_column"]
    return [c["name"] for c in record["table"]["columns"] if c["name"] != id_column]


def kind_name(column):
    """The name of a column's kind: "Integer", "Unsigned", "Decimal", ... (a decimal's kind
    is {"Decimal": {"scale": S}} in the record)."""
    kind = column["kind"]
    return kind if isinstance(kind, str) else next(iter(kind))


# The Spark type of each kind as the partitions store it (decimals are their canonical
# text, dates text too); Spark reads Parquet's unsigned 64-bit integers as decimal(20,0).
SPARK_TYPES = {"Integer": "bigint", "Unsigned": "decimal(20,0)", "Float": "double",
               "Binary": "binary"}


def unsigned_columns(record):
    """The `bigint unsigned` columns, which the result holds as their digits."""
    return {c["name"] for c in record["table"]["columns"] if kind_name(c) == "Unsigned"}


def check_records(records, key, ignore):
    """Fails unless every backup was extracted to Parquet with one table and the options
    agree with it; returns the stored columns and the partition column."""
    if not records:
        raise JobError("no extracted backups (date=YYYYMMDD/%s) in --partitions" % RECORD)
    dates = sorted(records)
    first = records[dates[0]]
    for earlier, later in zip(dates, dates[1:]):
        before, after = records[earlier], records[later]
        if before["table"]["columns"] != after["table"]["columns"]:
            raise JobError(
                "the table changed between the backups of %s and %s; backups with different "
                "columns cannot be compared: diff each stretch with one schema separately"
                % (earlier, later))
    for date in dates:
        inputs = records[date]["inputs"]
        if inputs.get("file_format") != "parquet":
            raise JobError("the backup of %s was extracted to %s partitions; the Spark job "
                           "reads Parquet (extract with --partition-format parquet)"
                           % (date, inputs.get("file_format")))
        for option in ("id_column", "partition_column"):
            if inputs[option] != first["inputs"][option]:
                raise JobError("the backups of %s and %s were extracted with different "
                               "--%s" % (dates[0], date, option.replace("_", "-")))
    stored = stored_columns(first)
    for role, names in (("--key", key), ("--ignore-columns", ignore)):
        unknown = [n for n in names if n not in stored]
        if unknown:
            raise JobError("%s: the table `%s` has no column(s) %s; its columns are %s" % (
                role, first["table"]["name"], ", ".join(unknown), ", ".join(stored)))
    both = [n for n in ignore if n in key]
    if both:
        raise JobError("--ignore-columns %s is part of --key" % ", ".join(both))
    return stored, first["inputs"]["partition_column"]


def plan_pairs(records, selected):
    """(date, previous, next, diffed) per backup that must be read: the selected ones and the
    one before the first of them; `diffed` says whether its issues are computed."""
    dates = sorted(records)
    chosen = [i for i, d in enumerate(dates) if selected(d)]
    if not chosen:
        raise JobError("no extracted backup has a date in --dates")
    rows = []
    for i in range(max(chosen[0] - 1, 0), chosen[-1] + 1):
        previous = dates[i - 1] if i > 0 else None
        following = dates[i + 1] if i + 1 < len(dates) else None
        rows.append((dates[i], previous, following, selected(dates[i])))
    return rows


def read_rows(spark, partitions, records, pairs, stored):
    """The rows of the backups of `pairs`, their stored columns, the index of their backup
    in `pairs` (`INDEX`) and, when any file holds it, the key's fingerprint (`FINGERPRINT`,
    else no such column)."""
    root = partitions.rstrip("/")
    with_rows = [date for date, *_ in pairs if records[date]["rows"] > 0]
    if not with_rows:  # Parquet has no file to take the types from
        table = records[pairs[0][0]]["table"]["columns"]
        schema = ", ".join("`%s` %s" % (c["name"], SPARK_TYPES.get(kind_name(c), "string"))
                           for c in table if c["name"] in stored)
        return spark.createDataFrame([], schema + ", %s int" % INDEX)
    paths = ["%s/date=%s" % (root, d) for d in with_rows]
    frame = spark.read.option("basePath", root).parquet(*paths)
    columns = [F.col("`%s`" % c) for c in stored]
    if FINGERPRINT in frame.columns:
        # Spark reads Parquet's unsigned 64-bit integers as decimal(20,0) (and cannot read
        # them as bigint from dictionary pages): hashed to a bigint, which keys with equal
        # fingerprints share. A file without the column gives NULL, all of which hash alike:
        # the diff then finds keys that differ within one hash and pairs by the key columns.
        columns.append(F.xxhash64(F.col(FINGERPRINT)).alias(FINGERPRINT))
    # Only the columns migrate stores, by name: files may hold more.
    dates = [int(date) for date, *_ in pairs]
    return frame.select(*columns, index_of(F.col("date").cast("int"), dates).alias(INDEX))


def index_of(date, dates, low=0):
    """The index of `date` (an int column) in the sorted `dates`: a tree of comparisons,
    log2(len(dates)) of them per row."""
    if len(dates) == 1:
        return F.lit(low)
    half = len(dates) // 2
    return F.when(date < dates[half], index_of(date, dates[:half], low)).otherwise(
        index_of(date, dates[half:], low + half))


def at(values, index, kind):
    """The element of a literal list by an int column."""
    return F.element_at(F.array(*[F.lit(v).cast(kind) for v in values]), index + 1)


def diff(spark, frame, stored, partition_column, key, ignore, pairs, unsigned=(),
         by_fingerprint=None):
    """The issue rows and removals of the pairs, as one frame with an `output` column;
    `unsigned` columns are written as their digits. Rows are grouped by the key's
    fingerprint when the frame has it (unless `by_fingerprint` is False), else by the key
    columns; a fingerprint that two keys share then fails the job with `COLLISION`.

    Two passes. The first shuffles and sorts narrow rows only (the fingerprint, the backup's
    index, the compared columns and the key), finds each row's status by its predecessor and
    successor, and keeps the changes: the candidates, cached and counted. The second reads
    the whole rows again and keeps those of the candidates by a join (broadcast when they are
    few), and every row of a diffed backup that has none before it (all of them are added)."""
    if by_fingerprint is None:
        by_fingerprint = FINGERPRINT in frame.columns
    compared = [c for c in stored if c not in key and c not in ignore]
    last = len(pairs) - 1
    index = F.col(INDEX)
    # Per backup read, by its index in date order (the backups read are consecutive, so the
    # one before index i is index i - 1): its date, the next backup's, whether it is diffed,
    # whether it is diffed with none before it (then every row is an added issue row: only
    # index 0 can be), and whether the next one is diffed (its removals are rows of this one).
    date_of = at([date for date, *_ in pairs], index, "string")
    next_of = at([following for _, _, following, _ in pairs], index, "string")
    selected = at([chosen for *_, chosen in pairs], index, "boolean")
    bulk = (index == 0) & F.lit(pairs[0][3] and pairs[0][1] is None)
    removals = at([i < last and pairs[i + 1][3] for i in range(len(pairs))], index, "boolean")
    base = frame
    keys = [F.col("`%s`" % k) for k in key]
    # Pass 1: one bigint to hash, shuffle and sort by instead of the key's columns.
    by_key = Window.partitionBy(F.col(FINGERPRINT) if by_fingerprint else keys).orderBy(INDEX)
    olds = ["__old_%d" % i for i in range(len(compared))]
    checks = ["__key_%d" % i for i in range(len(key))] if by_fingerprint else []
    narrow = base.select(*([FINGERPRINT] if by_fingerprint else []), *keys, INDEX,
                         *[F.col("`%s`" % c) for c in compared])
    rows = narrow.select(
        "*", F.lag(INDEX).over(by_key).alias(BEFORE), F.lead(INDEX).over(by_key).alias(AFTER),
        *[F.lag("`%s`" % c).over(by_key).alias(o) for c, o in zip(compared, olds)],
        *[F.lag("`%s`" % k).over(by_key).alias(o) for k, o in zip(key, checks)])
    before, after = F.col(BEFORE), F.col(AFTER)
    added = before.isNull() | (before != index - 1)
    differs = F.lit(False)
    for c, o in zip(compared, olds):
        differs = differs | ~F.col("`%s`" % c).eqNullSafe(F.col(o))
    key_text = F.concat_ws(", ", *[F.coalesce(F.col("`%s`" % k).cast("string"), F.lit("NULL"))
                                   for k in key])
    duplicate = F.raise_error(F.concat(
        F.lit("MIGRATE: the key (%s) = (" % ", ".join(key)), key_text,
        F.lit(") occurs more than once in the backup of "), date_of,
        F.lit("; the key must identify one row (pass --key with the table's unique key)")))
    is_issue = selected & ~bulk & (added | differs)
    is_removal = removals & (after.isNull() | (after != index + 1))
    # Every row is checked (the errors first), then kept when it is a change.
    keep = F.when(before == index, duplicate).otherwise(is_issue | is_removal)
    if by_fingerprint:
        # The key columns checked afterwards, as the local diff does: a row whose fingerprint
        # the row before it shares has its key. Two keys of one hash (or files without
        # fingerprints) sort next to each other somewhere in the window.
        same_key = F.lit(True)
        for k, o in zip(key, checks):
            same_key = same_key & F.col("`%s`" % k).eqNullSafe(F.col(o))
        collision = before.isNotNull() & ~same_key
        keep = F.when(collision, F.raise_error(F.lit(COLLISION))).otherwise(keep)
    own = [FINGERPRINT] if by_fingerprint else key
    match = ["__match_%d" % i for i in range(len(own))]
    found = [F.col("`%s`" % c).alias(m) for c, m in zip(own, match)]
    carried = [is_issue.alias(ISSUE), is_removal.alias(REMOVAL), added.alias(ADDED)]
    if VALUE in compared:
        carried.append(F.col(olds[compared.index(VALUE)]).alias(PREVIOUS_VALUE))
    cached = (rows.where(keep).select(*found, F.col(INDEX).alias(FOUND), *carried)
              .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        count = cached.count()  # runs pass 1: its errors raise here
    except Exception:
        cached.unpersist()
        raise
    candidates = F.broadcast(cached) if count <= BROADCAST_ROWS else cached
    # Pass 2: the whole rows of the candidates, and of the bulk backups. Keys may be NULL;
    # a fingerprint's hash never is.
    on = [F.col(FINGERPRINT) == F.col(match[0])] if by_fingerprint else [
        F.col("`%s`" % c).eqNullSafe(F.col(m)) for c, m in zip(own, match)]
    joined = base.join(candidates, on + [index == F.col(FOUND)], "left_outer")
    issue = bulk | F.coalesce(F.col(ISSUE), F.lit(False))
    removal = F.coalesce(F.col(REMOVAL), F.lit(False))
    # A row can be an issue row of its backup and a removal from the next backup: the rows
    # that are either are kept, then each once per output it belongs to.
    outputs = F.filter(F.array(F.when(issue, F.lit("issues")),
                               F.when(removal, F.lit("removals"))), lambda o: o.isNotNull())
    as_issue = F.col("output") == "issues"
    new = bulk | F.col(ADDED)
    columns = [F.col("`%s`" % c).cast("string").alias(c) if c in unsigned else F.col("`%s`" % c)
               for c in stored] + [F.when(as_issue, new).alias(ADDED)]
    if VALUE in compared:
        old_value = F.col(PREVIOUS_VALUE)
        if VALUE in unsigned:
            old_value = old_value.cast("string")
        columns.append(F.when(as_issue & ~new, old_value).alias(PREVIOUS_VALUE))
    both = (joined.where(issue | removal)
            .select("*", F.explode(outputs).alias("output"))
            .select(*columns,
                    F.when(as_issue, date_of).otherwise(next_of).alias("date"),
                    "output"))
    # One task per (output, date, source) group, sorted by source: `migrate emit` reads a
    # source of a date by the statistics of the files' row groups.
    return (both.repartition("output", "date", partition_column)
            .sortWithinPartitions("output", "date", partition_column)), cached


def job_record(records, pairs, key, ignore, stored, partition_column):
    """What was computed, for `migrate emit` to check against its own plan."""
    return {
        "format": RESULT_FORMAT,
        "key": key,
        "ignore_columns": ignore,
        "columns": stored,
        "partition_column": partition_column,
        "diffs": [{"date": date,
                   "previous": [previous, records[previous]["inputs"]] if previous else None,
                   "current": records[date]["inputs"]}
                  for date, previous, _, chosen in pairs if chosen],
    }


def run(spark, partitions, result, key, ignore, dates=None):
    records = read_records(spark, partitions)
    stored, partition_column = check_records(records, key, ignore)
    pairs = plan_pairs(records, parse_dates(dates) if dates else (lambda _: True))
    rows = read_rows(spark, partitions, records, pairs, stored)
    unsigned = unsigned_columns(records[pairs[0][0]])
    try:
        write(spark, rows, stored, partition_column, key, ignore, pairs, unsigned, result)
    except Collision:
        # Two keys share a fingerprint (about one series in 10^5 of 30 M keys), or some
        # files have none: the whole diff again, by the key columns.
        print("two keys share a fingerprint's hash: diffing again by the key columns",
              file=sys.stderr)
        write(spark, rows, stored, partition_column, key, ignore, pairs, unsigned, result,
              by_fingerprint=False)
    record = json.dumps(job_record(records, pairs, key, ignore, stored, partition_column))
    (spark.createDataFrame([(record,)], "value string").coalesce(1)
     .write.mode("overwrite").text(result.rstrip("/") + "/_job"))
    return len([p for p in pairs if p[3]])


class Collision(Exception):
    """A key fingerprint that two keys share: the diff runs again by the key columns."""


def write(spark, rows, stored, partition_column, key, ignore, pairs, unsigned, result,
          by_fingerprint=None):
    """Computes the diff and writes its rows as the result's Parquet; a failure of our own
    raises JobError with its message, or Collision."""
    candidates = None
    try:
        frame, candidates = diff(spark, rows, stored, partition_column, key, ignore, pairs,
                                 unsigned, by_fingerprint)
        (frame.drop(FINGERPRINT).write.mode("overwrite").option("compression", "zstd")
         .partitionBy("output", "date").parquet(result))
    except Exception as error:  # a Py4J or Spark error: find our own message in it
        text = str(error)
        if COLLISION in text:
            raise Collision() from None
        if "MIGRATE: " in text:
            message = text.split("MIGRATE: ", 1)[1].split("\n", 1)[0].split(" SQLSTATE")[0]
            raise JobError(message.rstrip(" .'\"") + ".") from None
        raise
    finally:
        if candidates is not None:
            candidates.unpersist()


def names(text):
    return [n for n in text.split(",") if n] if text else []


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", required=True, metavar="PATH",
                        help="the partitions tree: WORK/partitions of `migrate extract`")
    parser.add_argument("--result", required=True, metavar="PATH",
                        help="folder for the result (replaced)")
    parser.add_argument("--key", default=DEFAULT_KEY, metavar="COLS",
                        help="columns that identify a row (default: %s)" % DEFAULT_KEY)
    parser.add_argument("--ignore-columns", default="", metavar="COLS",
                        help="columns carried to the output but not compared")
    parser.add_argument("--dates", metavar="SELECTION",
                        help="only the backups of these dates (YYYYMMDD, A..B, comma-separated),"
                             " each against the backup before it")
    parser.add_argument("--master", help="Spark master when not run by spark-submit, e.g. "
                                         "local[2]")
    args = parser.parse_args(argv)
    builder = SparkSession.builder.appName("migrate diff")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    started = time.time()
    try:
        count = run(spark, args.partitions, args.result, names(args.key),
                    names(args.ignore_columns), args.dates)
    except JobError as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    finally:
        spark.stop()
    print("diffed %d backup(s) into %s in %.1f s" % (count, args.result, time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
