use std::process::ExitCode;

use clap::Parser;
use migrate::cli::Cli;
use migrate::exit_codes::ExitStatus;
use migrate::pipeline::{run, RunSummary};

fn main() -> ExitCode {
    let cli = Cli::parse();
    migrate::logging::init(cli.verbosity());
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitStatus::Usage.into();
        }
    };
    match run(&config) {
        Ok(summary) => {
            print_summary(&summary);
            ExitStatus::Success.into()
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitStatus::Failure.into()
        }
    }
}

fn print_summary(summary: &RunSummary) {
    println!(
        "{} backups, {} gaps, {:.1} MB of SQL in {:.1} s",
        summary.backups.len(),
        summary.gaps.len(),
        summary.sql_bytes as f64 / 1e6,
        summary.seconds
    );
    println!(
        "{:<24} {:>12} {:>10} {:>10} {:>10}",
        "source", "rows seen", "added", "changed", "removed"
    );
    for (source, totals) in &summary.sources {
        println!(
            "{:<24} {:>12} {:>10} {:>10} {:>10}",
            source, totals.rows_seen, totals.added, totals.changed, totals.removed
        );
    }
}
