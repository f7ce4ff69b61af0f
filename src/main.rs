use std::process::ExitCode;

use clap::Parser;
use migrate::cli::Cli;
use migrate::exit_codes::ExitStatus;
use migrate::pipeline::{run, RunSummary};
use migrate::{dry_run, interrupt, logging};

fn main() -> ExitCode {
    // A file size limit (ulimit -f) must fail the write with an error we can report, rather
    // than kill the process with SIGXFSZ.
    // SAFETY: setting a signal's disposition to "ignore" before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let (stages, args) = Cli::parse().into_parts();
    logging::init(args.verbosity(), args.log_format);
    let config = match args.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitStatus::Usage.into();
        }
    };
    interrupt::install();
    let result = if config.dry_run {
        dry_run::describe(&config, stages).map(|plan| print!("{plan}"))
    } else {
        run(&config, stages).map(|summary| print_summary(&summary))
    };
    match result {
        Ok(()) => ExitStatus::Success.into(),
        Err(_) if interrupt::requested() => {
            eprintln!("interrupted: finished units are kept; run the same command again to resume");
            ExitStatus::Interrupted.into()
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitStatus::Failure.into()
        }
    }
}

fn print_summary(summary: &RunSummary) {
    println!(
        "{} backups, {} gaps, {:.1} MB of SQL; {} units run, {} reused; {:.1} s",
        summary.backups.len(),
        summary.gaps.len(),
        summary.sql_bytes as f64 / 1e6,
        summary.units_run,
        summary.units_reused,
        summary.seconds
    );
    if summary.sources.is_empty() {
        return;
    }
    println!(
        "{:<24} {:>12} {:>10} {:>10} {:>10} {:>9}",
        "source", "rows seen", "added", "changed", "removed", "seconds"
    );
    for (source, totals) in &summary.sources {
        println!(
            "{:<24} {:>12} {:>10} {:>10} {:>10} {:>9.2}",
            source, totals.rows_seen, totals.added, totals.changed, totals.removed, totals.seconds
        );
    }
}
