//! The private MariaDB servers the tests start share nothing: several started at the same
//! moment all come up (their bootstraps once collided on temporary table names in `/tmp`).

mod common;

use common::MariaDb;

#[test]
fn four_servers_started_at_once_all_come_up_five_times_over() {
    for round in 0..5 {
        let servers: Vec<MariaDb> = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..4).map(|_| scope.spawn(MariaDb::start)).collect();
            starting
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    s.join()
                        .unwrap_or_else(|_| panic!("round {round}: server {i} did not start"))
                })
                .collect()
        });
        for (i, server) in servers.iter().enumerate() {
            // Each server answers, and is its own: a database made in one is in no other.
            server.sql(&format!("CREATE DATABASE only_in_{i}"));
        }
        for (i, server) in servers.iter().enumerate() {
            let databases = server.sql("SHOW DATABASES LIKE 'only_in_%'");
            assert_eq!(databases.trim(), format!("only_in_{i}"), "round {round}");
        }
    }
}
