INSERT INTO `t` VALUES ('),(','a'';b',"d""q",'\\','\'','x\0\b\n\r\t\Z\%\_\q'),('',"",' ; ','/* no */','-- no');
INSERT INTO `we``ird` (`a;b`,`c'd`) VALUES (1,2) ,( 3 , 4 ) ;
REPLACE INTO t VALUES (),(NULL,null,'NULL',-1.5e-3,+7,0x1F);
