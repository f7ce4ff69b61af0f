/*!40101 SET NAMES utf8mb4 */;
/* multi
   line; with 'quote */
-- line comment ;
#hash comment
;;  ;
CREATE TABLE t (a int /* inline; */ COMMENT 'c;d', `b` varchar(3) DEFAULT "x") ENGINE=InnoDB;
INSERT /* hint */ INTO t VALUES (1,'x');
SELECT 'VALUES' FROM dual;
