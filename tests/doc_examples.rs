//! Every `migrate …` command shown in the README, ARCHITECTURE.md and the guide under `docs/`
//! parses with the current command line: a renamed flag or subcommand fails here instead of
//! misleading a reader.
//!
//! Commands are read from fenced `sh`/`bash`/`console` blocks. A line counts when it starts
//! with `migrate`, `cargo run --`, `cargo run --release --`, or a built binary
//! (`target/debug/migrate`, `target/release/migrate`), after an optional `$ ` prompt. Trailing
//! `\` joins lines; a comment, pipe, redirection or `&&` ends the command. Placeholders are
//! read as a reader would: `[--geo G]` is the option itself, `extract|diff` is either
//! subcommand, and a bare `[options]` or `[flags]` stands for nothing.

use std::path::{Path, PathBuf};

use clap::Parser;
use migrate::cli::Cli;

/// One command found in a document, with where it was found.
struct Example {
    file: PathBuf,
    line: usize,
    text: String,
}

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("the guide's folder docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    files.extend(chapters);
    files.retain(|f| f.exists());
    files
}

/// The program prefixes that run `migrate`, longest first.
const PROGRAMS: &[&str] = &[
    "cargo run --release --",
    "cargo run --",
    "target/release/migrate",
    "target/debug/migrate",
    "./target/release/migrate",
    "./target/debug/migrate",
    "migrate",
];

fn examples(file: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = Vec::new();
    let mut in_shell = false;
    let mut pending: Option<Example> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(fence) = line.strip_prefix("```") {
            in_shell = !in_shell && matches!(fence.trim(), "sh" | "bash" | "console" | "shell");
            pending = None;
            continue;
        }
        if !in_shell {
            continue;
        }
        if let Some(mut example) = pending.take() {
            example.text.push(' ');
            example.text.push_str(line.trim_end_matches('\\'));
            if line.ends_with('\\') {
                pending = Some(example);
            } else {
                found.push(example);
            }
            continue;
        }
        let line = line.strip_prefix("$ ").unwrap_or(line);
        let Some(program) = PROGRAMS
            .iter()
            .find(|p| line == **p || line.starts_with(&format!("{p} ")))
        else {
            continue;
        };
        let rest = line[program.len()..].trim();
        let example = Example {
            file: file.to_path_buf(),
            line: index + 1,
            text: rest.trim_end_matches('\\').to_string(),
        };
        if rest.ends_with('\\') {
            pending = Some(example);
        } else {
            found.push(example);
        }
    }
    found
}

/// Splits a command as a shell would for our purposes: words, single and double quotes, and
/// the end of the command at a comment, pipe, redirection, `;` or `&&`.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            // `extract|diff` (no spaces) is an alternative, read below; `a#b` is one word.
            (None, '|' | '#') if in_word => word.push(c),
            (None, '#' | '|' | '>' | '<' | ';' | '&') => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The argument lists a documented command stands for: brackets dropped, `a|b` expanded.
fn argument_lists(command: &str) -> Vec<Vec<String>> {
    let mut lists: Vec<Vec<String>> = vec![vec!["migrate".to_string()]];
    for word in words(command) {
        let bare = word.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() || matches!(bare, "options" | "flags" | "OPTIONS" | "..." | "…") {
            continue;
        }
        let choices: Vec<&str> = if bare.starts_with('-') {
            vec![bare]
        } else {
            bare.split('|').collect()
        };
        lists = lists
            .into_iter()
            .flat_map(|list| {
                choices.iter().map(move |choice| {
                    let mut list = list.clone();
                    list.push(choice.to_string());
                    list
                })
            })
            .collect();
    }
    lists
}

#[test]
fn every_documented_command_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        for example in examples(&file) {
            for args in argument_lists(&example.text) {
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&args) {
                    let kind = e.kind();
                    if matches!(
                        kind,
                        clap::error::ErrorKind::DisplayHelp
                            | clap::error::ErrorKind::DisplayVersion
                    ) {
                        continue;
                    }
                    failures.push(format!(
                        "{}:{}: `{}`: {}",
                        example.file.display(),
                        example.line,
                        args.join(" "),
                        e.render().to_string().lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    // The README alone shows more than a dozen commands: finding few means the reader broke.
    assert!(checked >= 15, "only {checked} documented commands found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_renamed_flag_is_caught() {
    // The check itself must be able to fail: a flag that does not exist does not parse.
    let args = &argument_lists("--backups fixtures/backups --out out --no-such-flag")[0];
    assert!(Cli::try_parse_from(args).is_err());
    let args = &argument_lists("--backups fixtures/backups --out out # a comment | and a pipe")[0];
    assert_eq!(args.len(), 5, "{args:?}");
    assert!(Cli::try_parse_from(args).is_ok());
}

#[test]
fn placeholders_expand_as_a_reader_reads_them() {
    let lists = argument_lists("extract|diff --backups DIR --out OUT [options]");
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[0][1], "extract");
    assert_eq!(lists[1][1], "diff");
    assert_eq!(lists[0].len(), 6);
    let lists = argument_lists("history --out OUT --source S [--geo G]");
    assert_eq!(lists[0][lists[0].len() - 2], "--geo");
}
