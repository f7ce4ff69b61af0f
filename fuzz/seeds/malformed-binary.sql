INSERT INTO t VALUES (X'0'),(0x),(0b12),(_binary ,1),(b'2'),(0x41'a');
