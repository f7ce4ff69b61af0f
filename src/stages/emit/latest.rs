//! Keeping `is_latest_issue` right in a target table that has it: the keys a file inserted
//! lose the flag on their older rows, and removed keys lose it.

use std::io::Write;

use anyhow::Result;

use crate::stages::diff::SortedRows;
use crate::stages::emit::cells::{cells_of, Cell};
use crate::stages::emit::writers::{quote_name, write_sql_tuple};
use crate::stages::emit::EmitContext;

/// The statements that keep `is_latest_issue` right, set-based: the rows a file inserts
/// are the newest issues of their keys (files load in date order), so older issues of the
/// same keys lose the flag, found through the index that leads with the key's
/// `issue_prefix` columns and `issue`.
pub(super) struct LatestIssues<'a> {
    ctx: &'a EmitContext<'a>,
    /// `(prefix values..., issue)` tuples as SQL, of every row inserted (not collected for
    /// the first backup, whose file unflags nothing: most of a history's rows are there).
    inserted: std::collections::BTreeSet<Vec<u8>>,
    /// Whether any row was inserted.
    any: bool,
    prefix: Vec<usize>,
}

impl<'a> LatestIssues<'a> {
    pub(super) fn new(ctx: &'a EmitContext<'a>) -> LatestIssues<'a> {
        let prefix = ctx.target.map_or(Vec::new(), |plan| {
            (plan.issue_prefix.iter())
                .filter_map(|name| ctx.layout.names().position(|n| n == name))
                .collect()
        });
        LatestIssues {
            ctx,
            inserted: Default::default(),
            any: false,
            prefix,
        }
    }

    pub(super) fn inserted<'c>(&mut self, stored: &dyn Fn(usize) -> Cell<'c>, issue: i64) {
        if self.prefix.is_empty() {
            return;
        }
        self.any = true;
        if self.ctx.previous.is_none() {
            return;
        }
        let mut tuple = Vec::new();
        let cells = self.prefix.iter().map(|&i| stored(i));
        write_sql_tuple(&mut tuple, cells.chain([Cell::Integer(issue)]))
            .expect("key cells are finite");
        self.inserted.insert(tuple);
    }

    pub(super) fn key_columns(&self, alias: &str) -> Vec<String> {
        self.ctx
            .layout
            .key_names()
            .iter()
            .map(|k| format!("{alias}{}", quote_name(k)))
            .collect()
    }

    /// Older issues of the keys just inserted are no longer the latest.
    pub(super) fn write_unflag_older(&self, out: &mut dyn Write) -> Result<()> {
        let Some(plan) = self.ctx.target.filter(|p| p.maintains_latest) else {
            return Ok(());
        };
        if !self.any {
            return Ok(());
        }
        if self.ctx.previous.is_none() {
            // The series' first backup: its files are loaded into a table with no earlier
            // issue of these keys, so there is nothing to unflag, and the lookup of every
            // row (most of a history's rows are in its first backup) is spared.
            writeln!(out, "-- the first backup: no older issues to unflag")?;
            return Ok(());
        }
        let table = quote_name(&plan.table);
        let mut newer: Vec<String> = (plan.issue_prefix.iter())
            .map(|c| format!("`newer`.{}", quote_name(c)))
            .collect();
        newer.push("`newer`.`issue`".into());
        writeln!(
            out,
            "-- older issues of the keys above are no longer the latest\n\
             UPDATE {table} AS `older` JOIN {table} AS `newer` USING ({})\n\
             SET `older`.`is_latest_issue` = 0\n\
             WHERE `older`.`is_latest_issue` = 1 AND `older`.`issue` < `newer`.`issue`\n\
             AND ({}) IN (",
            self.key_columns("").join(","),
            newer.join(",")
        )?;
        for (i, tuple) in self.inserted.iter().enumerate() {
            out.write_all(if i == 0 { b"(" } else { b",\n(" })?;
            out.write_all(tuple)?;
            out.write_all(b")")?;
        }
        writeln!(out, ");")?;
        Ok(())
    }

    /// Without rows of their own, removed keys simply lose the flag: no row is the latest.
    pub(super) fn write_unflag_removed(
        &self,
        out: &mut dyn Write,
        removed: &SortedRows,
        names: &[&str],
    ) -> Result<()> {
        let Some(plan) = self.ctx.target.filter(|p| p.maintains_latest) else {
            return Ok(());
        };
        let key: Vec<usize> = (self.ctx.layout.columns.iter().enumerate())
            .filter(|(_, c)| c.is_key)
            .map(|(i, _)| i)
            .collect();
        let mut written = 0;
        for chunk in removed.chunks()? {
            let chunk = chunk?;
            let columns = cells_of(&chunk, names, Some(self.ctx.layout))?;
            for row in 0..chunk.height() {
                if written % self.ctx.chunk_rows == 0 {
                    if written == 0 {
                        writeln!(out, "-- keys missing from this backup are no longer served")?;
                    } else {
                        writeln!(out, ");")?;
                    }
                    write!(
                        out,
                        "UPDATE {} SET `is_latest_issue` = 0\nWHERE `is_latest_issue` = 1 AND ({}) IN (",
                        quote_name(&plan.table),
                        self.key_columns("").join(",")
                    )?;
                    out.write_all(b"(")?;
                } else {
                    out.write_all(b",\n(")?;
                }
                write_sql_tuple(out, key.iter().map(|&i| columns[i].get(row)))?;
                out.write_all(b")")?;
                written += 1;
            }
        }
        if written > 0 {
            writeln!(out, ");")?;
        }
        Ok(())
    }
}
