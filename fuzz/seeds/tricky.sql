/* c */ -- x
# y
CREATE TABLE t (a int COMMENT 'x;y');
INSERT INTO t (a) VALUES (1)
ON DUPLICATE KEY UPDATE a=VALUES(a);
INSERT INTO t VALUES ('unterminated