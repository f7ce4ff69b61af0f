INSERT INTO `t` VALUES (1,'a\'b'),
(2,'),(',NULL,-1.5e-3);
