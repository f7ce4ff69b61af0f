/*M!999999\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: epidata
-- ------------------------------------------------------
-- Server version	10.11.19-MariaDB-0+deb12u1

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;

--
-- Table structure for table `covidcast`
--

DROP TABLE IF EXISTS `covidcast`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8mb4 */;
CREATE TABLE `covidcast` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `source` varchar(32) NOT NULL,
  `signal` varchar(64) NOT NULL,
  `time_type` varchar(12) NOT NULL,
  `geo_type` varchar(12) NOT NULL,
  `time_value` int(11) NOT NULL,
  `geo_value` varchar(12) NOT NULL,
  `value_updated_timestamp` int(11) NOT NULL,
  `value` double DEFAULT NULL,
  `stderr` double DEFAULT NULL,
  `sample_size` double DEFAULT NULL,
  `direction_updated_timestamp` int(11) NOT NULL,
  `direction` int(11) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk` (`source`,`signal`,`time_type`,`geo_type`,`time_value`,`geo_value`)
) ENGINE=InnoDB AUTO_INCREMENT=66 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `covidcast`
--

LOCK TABLES `covidcast` WRITE;
/*!40000 ALTER TABLE `covidcast` DISABLE KEYS */;
INSERT INTO `covidcast` VALUES
(1,'fb-survey','smoothed_cli','day','county',20200529,'01001',100,1.5,0.25,120,100,1),
(2,'fb-survey','smoothed_cli','day','county',20200530,'01001',200,2.5,0.5,130,100,NULL),
(3,'fb-survey','smoothed_cli','day','county',20200531,'01001',200,3.25,NULL,140,100,-1),
(4,'fb-survey','smoothed_cli','day','county',20200530,'01003',300,0.125,0.0625,80,100,0),
(5,'fb-survey','smoothed_cli','day','county',20200531,'01003',100,0.375,0.0625,85,100,0),
(6,'fb-survey','smoothed_cli','day','county',20200531,'42003',100,7.75,1.25,NULL,100,NULL),
(7,'fb-survey','odd\'sig,\"x\\y),(z','day','state',20200530,'pa',100,10,NULL,NULL,100,NULL),
(8,'fb-survey','odd\'sig,\"x\\y),(z','day','state',20200531,'pa',100,11,NULL,NULL,100,NULL),
(9,'fb-survey','smoothed_wili','week','state',202021,'pa',100,4.5,0.5,1000,100,NULL),
(10,'fb-survey','smoothed_wili','week','state',202022,'pa',300,5.875,0.5,1100,100,NULL),
(11,'fb-survey','smoothed_wili','week','state',202022,'ny',100,6.5,NULL,950,100,NULL),
(13,'jhu-csse','confirmed_incidence_num','day','state',20200530,'ny',100,1e-16,NULL,NULL,100,NULL),
(14,'jhu-csse','confirmed_incidence_num','day','state',20200531,'ny',100,1.5e20,NULL,NULL,100,NULL),
(15,'jhu-csse','confirmed_incidence_num','day','state',20200530,'pa',100,12,NULL,NULL,100,NULL),
(16,'jhu-csse','confirmed_incidence_num','day','state',20200531,'pa',100,1.5,NULL,NULL,100,NULL),
(17,'doctor-visits','smoothed_adj_cli','day','county',20200530,'06037',100,2.5,NULL,NULL,100,NULL),
(18,'doctor-visits','smoothed_adj_cli','day','county',20200531,'06037',100,2.75,NULL,NULL,100,NULL),
(21,'fb-survey','smoothed_cli','day','county',20200601,'01001',200,3.5,NULL,140,200,-1),
(22,'fb-survey','smoothed_cli','day','county',20200601,'01003',200,0.875,0.0625,85,200,0),
(23,'fb-survey','smoothed_cli','day','county',20200601,'42003',200,8.25,1.25,NULL,200,NULL),
(24,'fb-survey','odd\'sig,\"x\\y),(z','day','state',20200601,'pa',200,11.5,NULL,NULL,200,NULL),
(25,'jhu-csse','confirmed_incidence_num','day','state',20200601,'ny',200,1e17,NULL,NULL,200,NULL),
(26,'jhu-csse','confirmed_incidence_num','day','state',20200601,'pa',200,2,NULL,NULL,200,NULL),
(27,'doctor-visits','smoothed_adj_cli','day','county',20200601,'06037',200,3.25,NULL,NULL,200,NULL),
(36,'fb-survey','smoothed_cli','day','county',20200602,'01001',300,4,NULL,140,300,-1),
(37,'fb-survey','smoothed_cli','day','county',20200602,'01003',300,1.375,0.0625,85,300,0),
(38,'fb-survey','smoothed_cli','day','county',20200602,'42003',300,8.75,1.25,NULL,300,NULL),
(39,'fb-survey','odd\'sig,\"x\\y),(z','day','state',20200602,'pa',300,12,NULL,NULL,300,NULL),
(40,'jhu-csse','confirmed_incidence_num','day','state',20200602,'ny',300,1e17,NULL,NULL,300,NULL),
(41,'jhu-csse','confirmed_incidence_num','day','state',20200602,'pa',300,-0.5,NULL,NULL,400,-1),
(42,'doctor-visits','smoothed_adj_cli','day','county',20200602,'06037',300,3.75,NULL,NULL,300,NULL),
(51,'fb-survey','smoothed_cli','day','county',20200603,'01001',400,4.5,NULL,140,400,-1),
(52,'fb-survey','smoothed_cli','day','county',20200603,'01003',400,1.875,0.0625,85,400,0),
(53,'fb-survey','smoothed_cli','day','county',20200603,'42003',400,9.25,1.25,NULL,400,NULL),
(54,'fb-survey','odd\'sig,\"x\\y),(z','day','state',20200603,'pa',400,12.5,NULL,NULL,400,NULL),
(55,'jhu-csse','confirmed_incidence_num','day','state',20200603,'ny',400,1e17,NULL,NULL,400,NULL),
(56,'jhu-csse','confirmed_incidence_num','day','state',20200603,'pa',400,3,NULL,NULL,400,NULL),
(57,'doctor-visits','smoothed_adj_cli','day','county',20200603,'06037',400,4.25,NULL,NULL,400,NULL);
/*!40000 ALTER TABLE `covidcast` ENABLE KEYS */;
UNLOCK TABLES;

--
-- Table structure for table `covidcast_meta`
--

DROP TABLE IF EXISTS `covidcast_meta`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8mb4 */;
CREATE TABLE `covidcast_meta` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `note` varchar(100) DEFAULT NULL,
  `value` double DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=4 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `covidcast_meta`
--

LOCK TABLES `covidcast_meta` WRITE;
/*!40000 ALTER TABLE `covidcast_meta` DISABLE KEYS */;
INSERT INTO `covidcast_meta` VALUES
(1,'a),(b',1),
(2,'it\'s; done',NULL),
(3,'covidcast',2.5);
/*!40000 ALTER TABLE `covidcast_meta` ENABLE KEYS */;
UNLOCK TABLES;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed
