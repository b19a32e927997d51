//! The keys that set what a service may ask of the kernel: `cap_add`,
//! `cap_drop`, `privileged` and `seccomp`. The seccomp filter is compiled here,
//! once per load of the file, for the service's capabilities: `check` finds
//! every problem of a profile, and a start only sends the program.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::capabilities::{self, Capabilities, CapabilityItem};
use crate::diagnostic::{Mark, Report};
use crate::read::{boolean, items, scalar_text, Fields};
use crate::suggest::closest;
use crate::tree::Node;
use crate::types::{Seccomp, Service};

/// Sets the service's capabilities, `privileged`, `seccomp` and its compiled filter.
pub fn read(report: &mut Report, dir: &Path, fields: &Fields, service: &mut Service) {
    let add = capability_list(report, fields, "cap_add");
    let drop = capability_list(report, fields, "cap_drop");
    if let Some(privileged) = fields.read(report, "privileged", boolean) {
        service.privileged = privileged;
    }
    if let Some(seccomp) = fields.read(report, "seccomp", |node| seccomp_choice(dir, node)) {
        service.seccomp = seccomp;
    }
    if service.privileged {
        // Docker ignores these with --privileged; here a contradiction is an error.
        for key in ["cap_add", "cap_drop", "seccomp"] {
            if let Some(entry) = fields.get(key) {
                let message = format!(
                    "{key}: has no effect with `privileged: true` (every capability, no seccomp filter)"
                );
                report.error(entry.key_mark, message);
            }
        }
        service.capabilities = Capabilities::ALL;
        return;
    }
    service.capabilities = capabilities::resolve(&add, &drop);
    let mark = fields.node("seccomp").map_or(Mark::START, |n| n.mark);
    service.seccomp_filter = filter(report, mark, service);
}

fn capability_list(report: &mut Report, fields: &Fields, key: &str) -> Vec<CapabilityItem> {
    let Some(node) = fields.node(key) else {
        return Vec::new();
    };
    let list = items(node).map_err(|why| report.error(node.mark, format!("{key}: {why}")));
    let mut caps = Vec::new();
    for item in list.unwrap_or_default() {
        match scalar_text(item, "a capability name").and_then(capabilities::parse_item) {
            Ok(cap) => caps.push(cap),
            Err(why) => report.error(item.mark, format!("{key}: {why}")),
        }
    }
    caps
}

/// `default`, `unconfined`, or a profile's path (relative to the file's directory).
fn seccomp_choice(dir: &Path, node: &Node) -> Result<Seccomp, String> {
    let text = scalar_text(node, "default, unconfined or a profile's path")?;
    match text {
        "default" => Ok(Seccomp::Default),
        "unconfined" => Ok(Seccomp::Unconfined),
        "" => Err("expected default, unconfined or a profile's path".to_owned()),
        path => {
            let full = dir.join(path);
            if !full.exists() && !path.contains('/') {
                if let Some(word) = closest(path, ["default", "unconfined"]) {
                    return Err(format!("`{path}`: no such profile, did you mean {word}?"));
                }
            }
            Ok(Seccomp::Profile(full))
        }
    }
}

/// The compiled filter; None with `unconfined`. Problems of the profile are
/// reported at the `seccomp` value, naming the file.
fn filter(report: &mut Report, mark: Mark, service: &Service) -> Option<Arc<seccomp::Program>> {
    let caps = service.capabilities;
    let compiled = match &service.seccomp {
        Seccomp::Unconfined => return None,
        Seccomp::Default => default_filter(caps),
        Seccomp::Profile(path) => match load_profile(path) {
            Ok(profile) => compile(&profile, caps).map(Arc::new),
            Err(why) => {
                report.error(mark, format!("seccomp: {}: {why}", path.display()));
                return None;
            }
        },
    };
    compiled
        .map_err(|err| report.error(mark, format!("seccomp: {err}")))
        .ok()
}

fn compile(
    profile: &seccomp::Profile,
    caps: Capabilities,
) -> Result<seccomp::Program, seccomp::CompileError> {
    let has_capability = |name: &str| caps.has_named(name);
    let context = seccomp::Context {
        has_capability: &has_capability,
        kernel: running_kernel(),
    };
    seccomp::compile(profile, &context)
}

/// The default profile's filter for `caps`, compiled once per capability set
/// in this process: a file of 100 services with the defaults compiles it once,
/// not 100 times (the compile was nearly all of a load's time, which a
/// `reexec` and a boot pay). The profile and the kernel do not change while
/// the process runs, so what is kept never goes stale.
fn default_filter(caps: Capabilities) -> Result<Arc<seccomp::Program>, seccomp::CompileError> {
    type Compiled = Vec<(Capabilities, Arc<seccomp::Program>)>;
    static COMPILED: Mutex<Compiled> = Mutex::new(Vec::new());
    let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, program)) = compiled.iter().find(|(c, _)| *c == caps) {
        return Ok(Arc::clone(program));
    }
    let program = Arc::new(compile(&seccomp::docker_default(), caps)?);
    compiled.push((caps, Arc::clone(&program)));
    Ok(program)
}

fn load_profile(path: &Path) -> Result<seccomp::Profile, String> {
    let text = std::fs::read(path).map_err(|err| {
        let text = err.to_string();
        text.split(" (os error").next().unwrap_or(&text).to_owned()
    })?;
    seccomp::Profile::from_json(&text).map_err(|err| err.to_string())
}

/// `(major, minor)` of the running kernel, for profiles' `minKernel`.
fn running_kernel() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    seccomp::kernel_version(uts.release().to_str()?)
}
