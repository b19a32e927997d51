//! `supervisor image ...`: import, list, remove and build root filesystem
//! images. Works without a daemon: only the images directory is involved.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};

use crate::cli::{ImageCommand, ImagesDirArgs};

pub fn run(cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Import {
            name,
            file,
            force,
            dirs,
        } => {
            let dir = images_dir(&dirs)?;
            let bar = ProgressLine::new(&name);
            let existing = match force {
                true => images::Existing::Replace,
                false => images::Existing::Refuse,
            };
            let info = images::import(&dir, &name, &file, existing, &|p| bar.show(p));
            bar.clear();
            let info = info.with_context(|| format!("import {name}"))?;
            println!(
                "imported {} ({}, {}) into {}",
                info.name,
                info.format,
                crate::human::bytes(info.size),
                dir.display()
            );
        }
        ImageCommand::Ls { dirs } => {
            let dir = images_dir(&dirs)?;
            let list = images::list(&dir).with_context(|| format!("list {}", dir.display()))?;
            print!("{}", table(&list));
        }
        ImageCommand::Rm { name, dirs } => {
            let dir = images_dir(&dirs)?;
            images::remove(&dir, &name).with_context(|| format!("rm {name}"))?;
        }
        ImageCommand::BuildBusybox { name, dirs } => {
            let dir = images_dir(&dirs)?;
            let info = images::build_busybox(&dir, &name)
                .with_context(|| format!("build-busybox {name}"))?;
            println!(
                "built {} ({}) into {}",
                info.name,
                crate::human::bytes(info.size),
                dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--images-dir`, else the `images_dir` of `-c FILE`, else the default.
fn images_dir(args: &ImagesDirArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.images_dir {
        return Ok(dir.clone());
    }
    if let Some(file) = &args.config {
        let config =
            config::load(file).map_err(|errors| anyhow!("{}", errors.to_string().trim_end()))?;
        return Ok(config.images_dir);
    }
    Ok(PathBuf::from(config::DEFAULT_IMAGES_DIR))
}

/// One self-overwriting line on stderr while importing, only on a terminal.
struct ProgressLine<'a> {
    name: &'a str,
    enabled: bool,
    last: Cell<Option<u64>>,
}

impl<'a> ProgressLine<'a> {
    fn new(name: &'a str) -> Self {
        ProgressLine {
            name,
            enabled: std::io::stderr().is_terminal(),
            last: Cell::new(None),
        }
    }

    fn show(&self, progress: images::Progress) {
        if !self.enabled {
            return;
        }
        // Redrawn when the shown figure changes: whole percents, or MiB when the total is unknown.
        let (key, text) = match progress.total {
            Some(total) if total > 0 => {
                let percent = progress.done.saturating_mul(100) / total;
                (
                    percent,
                    format!("{percent:3}% of {}", crate::human::bytes(total)),
                )
            }
            _ => (progress.done >> 20, crate::human::bytes(progress.done)),
        };
        if self.last.replace(Some(key)) != Some(key) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[Kimporting {}: {text}", self.name);
            let _ = err.flush();
        }
    }

    fn clear(&self) {
        if self.enabled && self.last.get().is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

fn table(list: &[images::ImageInfo]) -> String {
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                crate::human::bytes(i.size),
                i.source.clone(),
                crate::logs::timestamp::rfc3339_seconds(i.created),
            ]
        })
        .collect();
    let header = ["NAME", "SIZE", "SOURCE", "CREATED"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:>w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let info = |name: &str, size| images::ImageInfo {
            name: name.into(),
            source: "/src".into(),
            format: "directory".into(),
            created: 0,
            size,
        };
        let text = table(&[info("a", 1), info("busybox", 2048)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME       SIZE  SOURCE  CREATED");
        assert_eq!(lines[2], "busybox  2.0KiB  /src    1970-01-01T00:00:00Z");
    }
}
