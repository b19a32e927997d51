//! `init`: a tiny PID 1 for containers. Starts one command, reaps every
//! zombie, forwards signals, cleans up the leftovers and passes the exit
//! status on.
//!
//! Release builds (panic = "abort") are `no_std`: core, alloc and libc only,
//! which keeps the static binary small. Debug and test builds (unwinding
//! panics, which need std) link std but use nothing from it.

#![cfg_attr(panic = "abort", no_std)]
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

extern crate alloc;

use alloc::format;

#[macro_use]
mod logger;
mod cleanup;
mod options;
mod reap;
mod signals;
mod spawn;
mod supervise;
#[allow(unsafe_code)]
mod sys;
mod terminal;

use options::{Options, Request};
use supervise::Child;

/// Called by `sys`'s C entry point with the process's arguments.
fn start(args: &sys::Args) -> i32 {
    logger::init();
    match options::parse(args.list()) {
        Ok(Request::Run(options)) => run(args, &options),
        Ok(Request::Help) => {
            sys::write_all(1, options::USAGE.as_bytes());
            0
        }
        Ok(Request::Version) => {
            sys::write_all(
                1,
                concat!("init ", env!("CARGO_PKG_VERSION"), "\n").as_bytes(),
            );
            0
        }
        Err(e) => {
            error_line!("{e} (try init --help)");
            2
        }
    }
}

fn run(args: &sys::Args, options: &Options) -> i32 {
    if let Some(argv0) = args.list().first() {
        sys::set_name_from(argv0);
    }
    let signals = match sys::SignalWait::block_all() {
        Ok(signals) => signals,
        Err(e) => return fail(format_args!("blocking signals: {e}")),
    };
    if let Some(signal) = options.parent_death_signal {
        if let Err(e) = sys::set_parent_death_signal(signal) {
            return fail(format_args!("setting the parent-death signal: {e}"));
        }
    }
    // Held for the supervisor, never for the command.
    for &fd in options.held_fds.iter().chain(options.status_fd.iter()) {
        if let Err(e) = sys::set_cloexec(fd) {
            return fail(format_args!("fd {fd}: {e}"));
        }
    }
    let pid1 = sys::getpid() == 1;
    if !pid1 {
        match sys::set_child_subreaper() {
            Ok(()) => info!("not PID 1: registered as a child subreaper"),
            Err(e) => warn!("not PID 1 and cannot become a child subreaper: {e}"),
        }
    }
    let owns_terminal = terminal::child_should_take();
    let command = &args.list()[options.command..];
    let pid = match spawn::spawn(command, args.argv_from(options.command), owns_terminal) {
        Ok(pid) => pid,
        Err(e) => {
            error_line!("{e}");
            return e.exit_code();
        }
    };
    debug!("started {} as {pid}", logger::Quoted(command[0]));
    let child = Child {
        pid,
        target: if options.process_group { -pid } else { pid },
        owns_terminal,
    };
    let code = supervise::supervise(&signals, &child, pid1);
    debug!("main child exited with {code}");
    cleanup::terminate_rest(&signals, options.grace, pid1);
    let code = if options.expected_exits.contains(&code) {
        0
    } else {
        code
    };
    if let Some(fd) = options.status_fd {
        // Read by a supervisor that is not init's parent (it adopted the service).
        sys::write_all(fd, format!("{code}\n").as_bytes());
    }
    code
}

fn fail(message: core::fmt::Arguments) -> i32 {
    error_line!("{message}");
    1
}
