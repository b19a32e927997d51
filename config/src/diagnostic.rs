//! Problems found in a service list, each with the place it was found.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem: `FILE:LINE:COLUMN: message`. Line and column count from 1; a
/// line of 0 means the problem concerns the whole file (it could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            let file = self.file.display();
            write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

/// Every problem of a file, sorted by position. Display: one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Errors(pub Vec<Diagnostic>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// A position in the file (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    /// The start of the file.
    pub const START: Mark = Mark { line: 1, column: 1 };
}

/// Collects the problems of one file while it is checked.
#[derive(Debug)]
pub(crate) struct Report {
    file: PathBuf,
    found: Vec<Diagnostic>,
}

impl Report {
    pub(crate) fn new(file: &Path) -> Report {
        Report {
            file: file.to_path_buf(),
            found: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, mark: Mark, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.file.clone(),
            line: mark.line,
            column: mark.column,
            message: message.into(),
        });
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems, in the order they appear in the file, each once (a
    /// value used through several aliases is reported where it is written).
    pub(crate) fn into_errors(mut self) -> Errors {
        self.found.sort_by_key(|d| (d.line, d.column));
        let mut seen = HashSet::new();
        self.found
            .retain(|d| seen.insert((d.line, d.column, d.message.clone())));
        Errors(self.found)
    }
}
