INSERT INTO `t` VALUES (1,'a\r\n'),
(2,NULL);
-- crlf
CREATE TABLE `t` (
  `a` int
);
