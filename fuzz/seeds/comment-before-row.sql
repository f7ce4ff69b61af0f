INSERT INTO t VALUES /* not supported here */ (1);
