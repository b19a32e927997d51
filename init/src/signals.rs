//! Signal names as users write them (`TERM`, `SIGTERM`, `15`, `RTMIN+2`).

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal given by name (any case, with or without `SIG`), by
/// `RTMIN+n`/`RTMAX-n`, or by number.
pub fn parse(text: &str) -> Option<i32> {
    let name = match text.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("SIG") => &text[3..],
        _ => text,
    };
    let (rtmin, rtmax) = (crate::sys::sigrtmin(), crate::sys::sigrtmax());
    let real_time = |prefix: &str| {
        name.get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| &name[prefix.len()..])
    };
    let signal = if let Ok(number) = name.parse::<i32>() {
        number
    } else if let Some(rest) = real_time("RTMIN") {
        rtmin + offset(rest, '+')?
    } else if let Some(rest) = real_time("RTMAX") {
        rtmax - offset(rest, '-')?
    } else {
        let found = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        return found.map(|&(_, s)| s);
    };
    let valid = (1..=libc::SIGSYS).contains(&signal) || (rtmin..=rtmax).contains(&signal);
    valid.then_some(signal)
}

/// The `n` of `RTMIN+n` / `RTMAX-n` (empty means 0).
fn offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix(sign)?.parse().ok()
}

/// Short name for log lines.
pub fn name(signal: i32) -> &'static str {
    NAMES
        .iter()
        .find(|&&(_, s)| s == signal)
        .map_or("RT", |&(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_numbers_and_real_time() {
        assert_eq!(parse("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse("sigusr1"), Some(libc::SIGUSR1));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse("SIGRTMAX"), Some(libc::SIGRTMAX()));
        for bad in ["", "SIG", "NOPE", "0", "32", "65", "RTMIN-1", "RTMIN+x"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
