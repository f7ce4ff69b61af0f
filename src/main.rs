use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use migrate::cli::{
    Action, Cli, HistoryArgs, HistoryFormat, LoadArgs, PlotArgs, RunArgs, SourcesArgs,
};
use migrate::config::Stages;
use migrate::config::{Config, OutputFormat};
use migrate::exit_codes::{ExitStatus, UsageError};
use migrate::inspect::asof::asof;
use migrate::inspect::history::{history, HistoryRequest};
use migrate::inspect::plot::{plot, PlotRequest};
use migrate::inspect::sources::{sources, COLUMNS as SOURCE_COLUMNS};
use migrate::inspect::text_table::write_text_table;
use migrate::inspect::verify::verify;
use migrate::inspect::verify_database::verify_database;
use migrate::run::loading::{load, LoadRequest};
use migrate::run::{run, RunSummary};
use migrate::stages::emit::{write_rows, write_rows_from};
use migrate::stages::load::database::TableBusy;
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
        Action::Verify(args) if args.dates.is_some() && args.db.database.is_none() => {
            Err(dates_only_for_extract())
        }
        Action::Emit(_, args) if args.dates.is_some() => Err(dates_only_for_extract()),
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
            let report = match config.database {
                Some(_) => verify_database(config)?,
                None => verify(config)?,
            };
            for problem in &report.problems {
                println!("{problem}");
            }
            if report.not_listed > 0 {
                println!("... and {} more differences", report.not_listed);
            }
            if report.served_after_removal > 0 {
                println!(
                    "{} time(s) the as-of query served a key after its removal: the table has \
                     no row to record a removal (Epidata's October 2020 definition), so it \
                     serves the key's last row; the removals files list them",
                    report.served_after_removal
                );
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
            logging::init(args.log.verbosity(), args.log.log_format);
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
            logging::init(args.log.verbosity(), args.log.log_format);
            interrupt::install();
            print_history(args)
        }
        Action::Load(args) => {
            logging::init(args.log.verbosity(), args.log.log_format);
            interrupt::install();
            load_output(args)
        }
        Action::Sources(args) => {
            logging::init(args.log.verbosity(), args.log.log_format);
            interrupt::install();
            print_sources(args)
        }
        Action::Completions(shell) => {
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "migrate", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script).map_err(Into::into)
        }
        Action::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(anyhow::Error::from),
        Action::Plot(args) => {
            logging::init(args.log.verbosity(), args.log.log_format);
            draw_plot(args)
        }
    };
    match result {
        Ok(()) => ExitStatus::Success.into(),
        Err(error) if error.is::<UsageError>() => {
            eprintln!("error: {error}");
            ExitStatus::Usage.into()
        }
        Err(error) if error.is::<Busy>() || error.is::<TableBusy>() => {
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
    let request = HistoryRequest {
        out: args.out,
        sources: args.source,
        signals: args.signal,
        geo_values: args.geo,
        time_values: args.time_value,
        memory_limit: args.memory.memory_limit,
        max_part_rows: args.memory.max_part_rows,
    };
    let history = history(&request)?;
    match chosen_format(args.format) {
        HistoryFormat::Csv => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let names = history.columns.iter().map(String::as_str).collect();
            let chunks = history.rows.chunks()?;
            write_rows_from(&mut out, chunks, names, None, OutputFormat::Csv, "")?;
            out.flush()?;
            Ok(())
        }
        // A table's columns are as wide as their widest value: it is made whole.
        HistoryFormat::Table => {
            let frame = history.frame()?;
            let names = frame
                .get_column_names()
                .into_iter()
                .map(|n| n.as_str())
                .collect();
            print_frame(&frame, names, HistoryFormat::Table)
        }
    }
}

/// `migrate plot`: one source's signal, drawn to SVG. `--source` and `--signal` are lists
/// as in `asof` and `history`, of exactly one value each.
fn draw_plot(args: PlotArgs) -> anyhow::Result<()> {
    let one = |option: &str, values: Vec<String>| match <[String; 1]>::try_from(values) {
        Ok([value]) => Ok(value),
        Err(values) => Err(UsageError(format!(
            "plot draws one source and one signal (its axis shows one signal's values); \
             {option} {} names {}: draw each on its own, or list them with `migrate history` \
             or `migrate asof`",
            values.join(","),
            values.len()
        ))),
    };
    let request = PlotRequest {
        out: args.out,
        source: one("--source", args.source)?,
        signal: one("--signal", args.signal)?,
        geo_values: args.geo,
        asof: args.asof,
        lags: args.lag,
        to: args.to,
    };
    let drawn = plot(&request)?;
    println!(
        "{}: {} lines, {} revisions",
        request.to.display(),
        drawn.lines,
        drawn.revisions
    );
    Ok(())
}

/// `migrate sources`: the sources and signals of an output, as a table on a terminal, else
/// CSV (unless `--format` says).
fn print_sources(args: SourcesArgs) -> anyhow::Result<()> {
    let frame = sources(&args.out)?;
    print_frame(&frame, SOURCE_COLUMNS.to_vec(), chosen_format(args.format))
}

/// `--format`, else a table on a terminal and CSV otherwise.
fn chosen_format(format: Option<HistoryFormat>) -> HistoryFormat {
    format.unwrap_or(match std::io::stdout().is_terminal() {
        true => HistoryFormat::Table,
        false => HistoryFormat::Csv,
    })
}

/// Writes a frame to standard output, as `format` says.
fn print_frame(
    frame: &polars::prelude::DataFrame,
    names: Vec<&str>,
    format: HistoryFormat,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        HistoryFormat::Csv => write_rows(&mut out, frame, names, None, OutputFormat::Csv, "")?,
        HistoryFormat::Table => write_text_table(&mut out, frame)?,
    }
    out.flush()?;
    Ok(())
}

/// `migrate load`: the output into its live table, with a summary at the end.
fn load_output(args: LoadArgs) -> anyhow::Result<()> {
    let url = args.db.url().map_err(UsageError)?.ok_or_else(|| {
        UsageError("migrate load needs --database URL: the database to load into".into())
    })?;
    let request = LoadRequest {
        out: args.out,
        url,
        table: args.table,
        allow_existing: args.allow_existing,
    };
    let summary = load(&request)?;
    let rows = summary.rows();
    println!(
        "{}: {} date(s) loaded ({rows} rows in {:.1} s, {:.0} rows/s), {} already loaded",
        summary.table,
        summary.loaded.len(),
        summary.seconds,
        rows as f64 / summary.seconds.max(1e-3),
        summary.skipped
    );
    Ok(())
}

fn dates_only_for_extract() -> anyhow::Error {
    UsageError(
        "--dates selects the backups of `migrate extract` (one machine's share of the \
         extraction) and of `migrate verify --database`; the other commands need every backup"
            .into(),
    )
    .into()
}

/// Sets up logging and Ctrl-C from the flags, checks them into a `Config`, and runs `body`.
fn with_config(
    args: RunArgs,
    body: impl FnOnce(&Config) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    logging::init(args.verbosity(), args.log.log_format);
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
    if let Some(lag) = summary.lag.as_ref().filter(|_| summary.no_lag) {
        println!("lag: {lag}");
    }
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
