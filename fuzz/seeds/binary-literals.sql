CREATE TABLE `t` (
  `id` int NOT NULL,
  `b` binary(1) NOT NULL DEFAULT _binary '\0',
  `v` varbinary(8) DEFAULT 0x01,
  `f` bit(4) DEFAULT b'0',
  `r` varbinary(2) DEFAULT _binary 'ÿ'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
INSERT INTO `t` VALUES (1,_binary '\0',_binary '\0ÿ€\'\"\Z',_binary '\n',''),(2,0x00,0x00FF,0x0A,0xF),(3,X'00',x'00ff',b'1010',B''),(4,0b0,_binary'',0b1111,X''),(5,_binary 0x01,_BINARY X'4142',_binary
 b'1',_utf8mb4'Ã©'),(6,_latin1 0x41,_binary "d""q",NULL,'');
