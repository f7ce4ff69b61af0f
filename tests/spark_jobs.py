"""Runs several jobs of scripts/spark/migrate_diff.py in one local[2] Spark session, for
tests/spark.rs: starting Spark takes longer than the tests' jobs. argv[1] is a JSON list of
{"partitions", "result", "key", "ignore_columns", "dates"}; each job's outcome is written to
RESULT.status: "ok", or "error: " and the job's message for bad input. Anything else fails
the whole run."""
import importlib.util
import json
import os
import sys

from pyspark.sql import SparkSession

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "migrate_diff", os.path.join(HERE, "..", "scripts", "spark", "migrate_diff.py"))
migrate_diff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(migrate_diff)


def main():
    jobs = json.load(open(sys.argv[1]))
    spark = (SparkSession.builder.master("local[2]").appName("migrate tests")
             .config("spark.ui.enabled", "false")
             # Loopback only: the driver otherwise binds the machine's address.
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             # Small data: a few shuffle partitions, so a date's files hold several sources.
             .config("spark.sql.shuffle.partitions", "4")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for job in jobs:
            try:
                migrate_diff.run(spark, job["partitions"], job["result"],
                                 migrate_diff.names(job.get("key", migrate_diff.DEFAULT_KEY)),
                                 migrate_diff.names(job.get("ignore_columns", "")),
                                 job.get("dates"))
                status = "ok"
            except migrate_diff.JobError as error:
                status = "error: %s" % error
            with open(job["result"].rstrip("/") + ".status", "w") as out:
                out.write(status)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
