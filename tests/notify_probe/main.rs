//! `notify-probe`: a service that speaks systemd's sd_notify protocol, for the
//! readiness tests (busybox cannot send a unix datagram). A static binary,
//! copied into the tests' root filesystems. It sends from its own process,
//! which stays alive, as a daemon using sd_notify does.
//!
//! It prints `NOTIFY_SOCKET=...` and `WATCHDOG_USEC=...` as it finds them,
//! then runs its steps in order and waits forever: `send TEXT` (`\n` in TEXT
//! for a newline), `wait PATH` (until the file exists), `ping COUNT MS`
//! (WATCHDOG=1 COUNT times, MS apart), `exit CODE`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

fn main() -> ExitCode {
    for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        let value = std::env::var(name).unwrap_or_default();
        println!("{name}={value}");
    }
    let socket = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
    let send = |text: &str| {
        let sender = UnixDatagram::unbound().expect("socket");
        if let Err(err) = sender.send_to(text.replace("\\n", "\n").as_bytes(), &socket) {
            eprintln!("notify-probe: send to {socket}: {err}");
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut steps = args.iter().map(String::as_str);
    while let Some(step) = steps.next() {
        match (step, steps.next()) {
            ("send", Some(text)) => send(text),
            ("wait", Some(path)) => {
                while !Path::new(path).exists() {
                    sleep(Duration::from_millis(20));
                }
            }
            ("ping", Some(count)) => {
                let count: u32 = count.parse().expect("ping COUNT MS");
                let ms: u64 = steps
                    .next()
                    .and_then(|ms| ms.parse().ok())
                    .expect("ping COUNT MS");
                for _ in 0..count {
                    send("WATCHDOG=1");
                    sleep(Duration::from_millis(ms));
                }
            }
            ("exit", Some(code)) => return ExitCode::from(code.parse::<u8>().unwrap_or(1)),
            (other, _) => {
                eprintln!("notify-probe: unknown step {other}");
                return ExitCode::from(2);
            }
        }
    }
    loop {
        sleep(Duration::from_secs(3600));
    }
}
