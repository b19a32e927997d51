//! A profile as an OCI runtime's `linux.seccomp` (runtime-spec 1.x JSON), for
//! one service: Docker's `includes`/`excludes` have no OCI form, so they are
//! decided here, for the service's capabilities and kernel, as `compile` does.

use serde_json::{json, Value};

use crate::arch;
use crate::compile::{applies, Context};
use crate::profile::{Action, CmpOp, Profile};

/// `linux.seccomp` with the rules of `profile` that apply in `context`, for the
/// native architecture. Calls this architecture lacks are left out; a call
/// claimed by an earlier rule without argument checks is left out of later
/// such rules, since the first one decides (as in `compile`).
pub fn to_oci(profile: &Profile, context: &Context) -> Value {
    let mut claimed = std::collections::HashSet::new();
    let mut syscalls = Vec::new();
    for rule in profile.rules.iter().filter(|rule| applies(rule, context)) {
        let names: Vec<&String> = rule
            .names
            .iter()
            .filter(|name| arch::syscall_number(name).is_some())
            .filter(|name| !rule.args.is_empty() || claimed.insert(name.as_str()))
            .collect();
        if names.is_empty() {
            continue;
        }
        let mut entry = action(rule.action, "action", "errnoRet");
        entry["names"] = json!(names);
        if !rule.args.is_empty() {
            let args: Vec<Value> = rule
                .args
                .iter()
                .map(|arg| {
                    json!({
                        "index": arg.index,
                        "value": arg.value,
                        "valueTwo": arg.value_two,
                        "op": operator(arg.op),
                    })
                })
                .collect();
            entry["args"] = json!(args);
        }
        syscalls.push(entry);
    }
    let mut seccomp = action(profile.default_action, "defaultAction", "defaultErrnoRet");
    seccomp["architectures"] = json!([arch::NAMES[0]]);
    seccomp["syscalls"] = json!(syscalls);
    seccomp
}

/// `{KEY: action}` and, for an errno, `{ERRNO_KEY: errno}`.
fn action(action: Action, key: &str, errno_key: &str) -> Value {
    let (name, errno) = match action {
        Action::Allow => ("SCMP_ACT_ALLOW", None),
        Action::Errno(errno) => ("SCMP_ACT_ERRNO", Some(errno)),
        Action::KillThread => ("SCMP_ACT_KILL", None),
        Action::KillProcess => ("SCMP_ACT_KILL_PROCESS", None),
        Action::Trap => ("SCMP_ACT_TRAP", None),
        Action::Trace(errno) => ("SCMP_ACT_TRACE", Some(errno)),
        Action::Log => ("SCMP_ACT_LOG", None),
    };
    let mut value = json!({ key: name });
    if let Some(errno) = errno {
        value[errno_key] = json!(errno);
    }
    value
}

fn operator(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Ne => "SCMP_CMP_NE",
        CmpOp::Lt => "SCMP_CMP_LT",
        CmpOp::Le => "SCMP_CMP_LE",
        CmpOp::Eq => "SCMP_CMP_EQ",
        CmpOp::Ge => "SCMP_CMP_GE",
        CmpOp::Gt => "SCMP_CMP_GT",
        CmpOp::MaskedEq => "SCMP_CMP_MASKED_EQ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(caps: &'static [&'static str]) -> Context<'static> {
        let has: &'static dyn Fn(&str) -> bool =
            Box::leak(Box::new(move |name: &str| caps.contains(&name)));
        Context {
            has_capability: has,
            kernel: Some((6, 1)),
        }
    }

    #[test]
    fn the_default_profile_reads_back_with_the_services_capabilities() {
        let profile = crate::docker_default();
        let plain = to_oci(&profile, &context(&[]));
        let admin = to_oci(&profile, &context(&["CAP_SYS_ADMIN"]));
        assert_eq!(plain["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(plain["defaultErrnoRet"], 1);
        assert_eq!(plain["architectures"], json!([arch::NAMES[0]]));
        let allows = |seccomp: &Value, call: &str| {
            seccomp["syscalls"].as_array().unwrap().iter().any(|rule| {
                rule["action"] == "SCMP_ACT_ALLOW"
                    && rule.get("args").is_none()
                    && rule["names"].as_array().unwrap().iter().any(|n| n == call)
            })
        };
        assert!(allows(&plain, "read") && allows(&admin, "read"));
        assert!(!allows(&plain, "mount") && allows(&admin, "mount"));
        // It is a profile again, for a runtime or for us.
        let text = serde_json::to_vec(&plain).unwrap();
        let again = Profile::from_json(&text).unwrap();
        assert_eq!(again.default_action, Action::Errno(1));
    }

    #[test]
    fn a_call_is_decided_once_and_unknown_calls_are_left_out() {
        let json = br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}"#;
        let oci = to_oci(&Profile::from_json(json).unwrap(), &context(&[]));
        assert_eq!(
            oci["syscalls"],
            json!([
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["rmdir"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}
            ])
        );
    }
}
