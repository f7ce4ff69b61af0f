-- Delphi Epidata's covidcast table as of October 2020 (delphi-epidata src/ddl/covidcast.sql,
-- commit 302fcaa8), written from its published schema. Create it with
--   mariadb epidata < ddl/covidcast-2020.sql
CREATE TABLE `covidcast` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `source` varchar(32) NOT NULL,
  `signal` varchar(64) NOT NULL,
  `time_type` varchar(12) NOT NULL,
  `geo_type` varchar(12) NOT NULL,
  `time_value` int(11) NOT NULL,
  `geo_value` varchar(12) NOT NULL,
  `value_updated_timestamp` int(11) NOT NULL,
  `value` double NOT NULL,
  `stderr` double,
  `sample_size` double,
  `direction_updated_timestamp` int(11) NOT NULL,
  `direction` int(11),
  `issue` int(11) NOT NULL,
  `lag` int(11) NOT NULL,
  `is_latest_issue` binary(1) NOT NULL,
  `is_wip` binary(1) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `unique_key` (`source`,`signal`,`time_type`,`geo_type`,`time_value`,`geo_value`,`issue`),
  KEY `by_issue` (`source`,`signal`,`time_type`,`geo_type`,`issue`,`time_value`,`geo_value`),
  KEY `by_lag` (`source`,`signal`,`time_type`,`geo_type`,`lag`,`time_value`,`geo_value`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
