INSERT INTO t VALUES (1);
/* open comment