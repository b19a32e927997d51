//! Command-line mistakes as one line: clap's error, its tip and where help
//! is, e.g. `supervisor: unexpected argument '--jsn' found (tip: a similar
//! argument exists: '--json'; try 'supervisor events --help')`, exit 2.

use std::process::ExitCode;

use clap::error::ErrorKind;

/// Prints `error` as clap does for help and version, as one line otherwise.
pub fn report(error: clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    eprintln!("supervisor: {}", one_line(&error.render().to_string()));
    ExitCode::from(2)
}

/// clap's message, its tips and its "try --help", in one line.
fn one_line(text: &str) -> String {
    let mut message = String::new();
    let mut notes = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("error: ") {
            if message.is_empty() {
                message = m.to_string();
            }
        } else if line.starts_with("tip: ") {
            notes.push(line.to_string());
        } else if let Some(help) = line.strip_prefix("For more information, ") {
            notes.push(help.trim_end_matches('.').to_string());
        }
    }
    if message.is_empty() {
        message = text
            .lines()
            .next()
            .unwrap_or("bad command line")
            .to_string();
    }
    if notes.is_empty() {
        message
    } else {
        format!("{message} ({})", notes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn line(args: &[&str]) -> String {
        let error = Cli::try_parse_from(args).unwrap_err();
        one_line(&error.render().to_string())
    }

    #[test]
    fn usage_errors_fit_on_one_line() {
        let unknown = line(&["supervisor", "events", "--jsn"]);
        assert!(
            unknown.starts_with("unexpected argument '--jsn' found (tip: "),
            "{unknown}"
        );
        assert!(unknown.ends_with("try '--help')"), "{unknown}");
        let since = line(&["supervisor", "events", "--since", "10x"]);
        assert!(since.contains("malformed duration `10x`"), "{since}");
        assert!(!since.contains('\n'));
    }
}
