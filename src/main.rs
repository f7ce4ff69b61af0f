use std::process::ExitCode;

use clap::Parser;
use migrate::cli::{Action, Cli, HistoryArgs, HistoryFormat, LogFormat, RunArgs};
use migrate::config::Stages;
use migrate::config::{Config, OutputFormat};
use migrate::exit_codes::{ExitStatus, UsageError};
use migrate::inspect::asof::asof;
use migrate::inspect::history::{history, HistoryRequest};
use migrate::inspect::plot::{plot, PlotRequest};
use migrate::inspect::text_table::write_text_table;
use migrate::inspect::verify::verify;
use migrate::run::{run, RunSummary};
use migrate::stages::emit::write_rows_from;
use migrate::workdir::lock::Busy;
use migrate::{cli::logging, inspect::dry_run, workdir::interrupt};

fn main() -> ExitCode {
    // A file size limit (ulimit -f) must fail the write with an error we can report, rather
    // than kill the process with SIGXFSZ.
    // SAFETY: setting a signal's disposition to "ignore" before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let action = Cli::parse().into_action();
    let result = match action {
        Action::Run(stages, args) if args.dates.is_some() && stages != Stages::Extract => {
            Err(dates_only_for_extract())
        }
        Action::Verify(args) | Action::Emit(_, args) if args.dates.is_some() => {
            Err(dates_only_for_extract())
        }
        Action::Run(_, args) if args.dates.is_some() && args.fresh => Err(UsageError(
            "--dates takes no --fresh: it would remove the partitions of every date, those \
             other machines extract too"
                .into(),
        )
        .into()),
        Action::Run(stages, args) => with_config(args, |config| {
            if config.dry_run {
                dry_run::describe(config, stages).map(|plan| print!("{plan}"))
            } else {
                run(config, stages).map(|summary| print_summary(&summary))
            }
        }),
        Action::Emit(from, args) => with_config(args, |config| {
            let stages = if config.dry_run {
                Stages::Diff
            } else {
                Stages::Emit
            };
            let config = Config {
                diffs_from: Some(from),
                ..config.clone()
            };
            if config.dry_run {
                dry_run::describe(&config, stages).map(|plan| print!("{plan}"))
            } else {
                run(&config, stages).map(|summary| print_summary(&summary))
            }
        }),
        Action::Verify(args) if args.dry_run || args.fresh => Err(UsageError(
            "verify takes neither --dry-run nor --fresh: it only reads the output (and \
             extracts backups whose partitions are missing)"
                .into(),
        )
        .into()),
        Action::Verify(args) => with_config(args, |config| {
            let report = verify(config)?;
            for problem in &report.problems {
                println!("{problem}");
            }
            if report.not_listed > 0 {
                println!("... and {} more differences", report.not_listed);
            }
            println!(
                "verified {} backups of {} sources: {}",
                report.backups,
                report.sources,
                if report.is_clean() {
                    "identical"
                } else {
                    "DIFFERENCES FOUND"
                }
            );
            anyhow::ensure!(report.is_clean(), "the output does not rebuild the backups");
            Ok(())
        }),
        Action::Asof(args) => {
            logging::init(-(args.quiet as i8), LogFormat::Text);
            interrupt::install();
            asof(&args).map(|rows| match (args.lag, args.date) {
                (Some(lag), Some(date)) => {
                    tracing::info!("{rows} rows at lag {lag}, from backups up to {date}")
                }
                (Some(lag), None) => tracing::info!("{rows} rows at lag {lag}"),
                (None, date) => tracing::info!("{rows} rows as of {}", date.unwrap_or_default()),
            })
        }
        Action::History(args) => {
            logging::init(-(args.quiet as i8), LogFormat::Text);
            interrupt::install();
            print_history(args)
        }
        Action::Plot(args) => {
            logging::init(0, LogFormat::Text);
            let request = PlotRequest {
                out: args.out,
                source: args.source,
                signal: args.signal,
                geo_values: args.geo,
                asof: args.asof,
                lags: args.lag,
                to: args.to,
            };
            plot(&request).map(|drawn| {
                println!(
                    "{}: {} lines, {} revisions",
                    request.to.display(),
                    drawn.lines,
                    drawn.revisions
                )
            })
        }
    };
    match result {
        Ok(()) => ExitStatus::Success.into(),
        Err(error) if error.is::<UsageError>() => {
            eprintln!("error: {error}");
            ExitStatus::Usage.into()
        }
        Err(error) if error.is::<Busy>() => {
            eprintln!("error: {error}");
            ExitStatus::Busy.into()
        }
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

/// Writes the history of the asked points to standard output: a table on a terminal, else
/// CSV (unless `--format` says).
fn print_history(args: HistoryArgs) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let request = HistoryRequest {
        out: args.out,
        source: args.source,
        signal: args.signal,
        geo_values: args.geo,
        time_values: args.time_value,
        memory_limit: args.memory_limit,
        max_part_rows: args.max_part_rows,
    };
    let history = history(&request)?;
    let stdout = std::io::stdout();
    let format = args.format.unwrap_or(match stdout.is_terminal() {
        true => HistoryFormat::Table,
        false => HistoryFormat::Csv,
    });
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        HistoryFormat::Csv => {
            let names = history.columns.iter().map(String::as_str).collect();
            let chunks = history.rows.chunks()?;
            write_rows_from(&mut out, chunks, names, OutputFormat::Csv, "")?;
        }
        // A table's columns are as wide as their widest value: it is made whole.
        HistoryFormat::Table => write_text_table(&mut out, &history.frame()?)?,
    }
    out.flush()?;
    Ok(())
}

fn dates_only_for_extract() -> anyhow::Error {
    UsageError(
        "--dates selects the backups of `migrate extract` (one machine's share of the \
         extraction); the other commands need every backup"
            .into(),
    )
    .into()
}

/// Sets up logging and Ctrl-C from the flags, checks them into a `Config`, and runs `body`.
fn with_config(
    args: RunArgs,
    body: impl FnOnce(&Config) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    logging::init(args.verbosity(), args.log_format);
    let config = args.into_config().map_err(UsageError)?;
    interrupt::install();
    body(&config)
}

fn print_summary(summary: &RunSummary) {
    println!(
        "{} backups, {}, {:.1} MB of SQL; {} units run, {} reused; {:.1} s",
        summary.backups.len(),
        match summary.gaps.len() {
            1 => "1 gap".to_string(),
            n => format!("{n} gaps"),
        },
        summary.sql_bytes as f64 / 1e6,
        summary.units_run,
        summary.units_reused,
        summary.seconds
    );
    if summary.sources.is_empty() {
        return;
    }
    println!(
        "{:<24} {:>12} {:>10} {:>10} {:>10} {:>9} {:>10} {:>11} {:>10}",
        "source",
        "rows seen",
        "added",
        "changed",
        "removed",
        "seconds",
        "revised %",
        "median lag",
        "mean |Δ|"
    );
    for (source, totals) in &summary.sources {
        let backfill = &totals.backfill;
        println!(
            "{:<24} {:>12} {:>10} {:>10} {:>10} {:>9} {:>10.1} {:>11} {:>10}",
            source,
            totals.rows_seen,
            totals.added,
            totals.changed,
            totals.removed,
            // Units found finished took their time in an earlier run.
            match totals.units_run {
                0 => "-".to_string(),
                _ => format!("{:.2}", totals.seconds),
            },
            100.0 * backfill.revised_share,
            backfill
                .median_revision_lag
                .map_or("-".into(), |l| l.to_string()),
            backfill.mean_abs_revision.map_or("-".into(), mean_change)
        );
    }
}

/// A mean revision size for the summary table: fixed-point, or in exponent form when it is
/// too large to fit the column (extreme doubles in generated data reach 1e300).
fn mean_change(mean: f64) -> String {
    match mean.abs() < 1e6 {
        true => format!("{mean:.4}"),
        false => format!("{mean:.3e}"),
    }
}
