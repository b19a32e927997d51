//! A seccomp profile: the default action and the rules, as Docker's and OCI's
//! JSON format writes them (`defaultAction`, `syscalls[{names, action, args,
//! errnoRet, includes, excludes}]`). Read strictly where a mistake would weaken
//! the filter (an unknown action or operator is an error), leniently where
//! Docker is (unknown system call names are skipped when compiling).

use serde::Deserialize;

/// `EPERM`: the errno of `SCMP_ACT_ERRNO` without `errnoRet`.
pub const EPERM: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub default_action: Action,
    /// In the file's order.
    pub rules: Vec<Rule>,
}

/// What the kernel does with a matching system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u32),
    /// Kills the calling thread (`SCMP_ACT_KILL`, `SCMP_ACT_KILL_THREAD`).
    KillThread,
    KillProcess,
    /// Sends SIGSYS.
    Trap,
    /// Lets a ptrace tracer decide (fails with ENOSYS without one).
    Trace(u32),
    /// Allows and logs.
    Log,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    /// All must hold (an empty list always does).
    pub args: Vec<ArgCmp>,
    /// The rule applies only where these hold...
    pub includes: RuleFilter,
    /// ...and not where these do.
    pub excludes: RuleFilter,
}

/// Conditions on where a rule applies (Docker's `includes`/`excludes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFilter {
    /// Capability names as written (`CAP_SYS_ADMIN`).
    pub caps: Vec<String>,
    /// Architecture names (`amd64`, `arm64`, `SCMP_ARCH_X86_64`).
    pub arches: Vec<String>,
    /// `(major, minor)` of the running kernel, at least.
    pub min_kernel: Option<(u32, u32)>,
}

/// A comparison of one 64-bit system call argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCmp {
    /// 0 to 5.
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
    /// The datum of `MaskedEq` (`value` is the mask).
    pub value_two: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("not a seccomp profile: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Profile {
    /// Reads a profile in Docker's/OCI's JSON format.
    pub fn from_json(text: &[u8]) -> Result<Profile, ProfileError> {
        let raw: RawProfile = serde_json::from_slice(text)?;
        let default_errno = raw.default_errno_ret;
        let default_action = action(&raw.default_action, raw.default_errno_ret, default_errno)
            .map_err(|why| ProfileError::Invalid(format!("defaultAction: {why}")))?;
        for arch in &raw.architectures {
            if !arch.starts_with("SCMP_ARCH_") {
                let message = format!("architectures: unknown architecture `{arch}`");
                return Err(ProfileError::Invalid(message));
            }
        }
        let mut rules = Vec::new();
        for (i, raw_rule) in raw.syscalls.into_iter().enumerate() {
            let rule = rule(raw_rule, default_errno)
                .map_err(|why| ProfileError::Invalid(format!("syscalls[{i}]: {why}")))?;
            rules.push(rule);
        }
        Ok(Profile {
            default_action,
            rules,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProfile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    names: Vec<String>,
    /// The older format's single name.
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<RawArg>,
    #[serde(default)]
    includes: RawFilter,
    #[serde(default)]
    excludes: RawFilter,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

fn rule(raw: RawRule, default_errno: Option<u32>) -> Result<Rule, String> {
    let mut names = raw.names;
    names.extend(raw.name);
    if names.is_empty() {
        return Err("no system call names".to_owned());
    }
    let action = action(&raw.action, raw.errno_ret, default_errno)?;
    let args = raw
        .args
        .iter()
        .map(arg)
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Rule {
        names,
        action,
        args,
        includes: filter(raw.includes)?,
        excludes: filter(raw.excludes)?,
    })
}

fn action(name: &str, errno: Option<u32>, default_errno: Option<u32>) -> Result<Action, String> {
    let errno = errno.or(default_errno).unwrap_or(EPERM);
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_TRACE" => Action::Trace(errno),
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err("SCMP_ACT_NOTIFY is not supported (it needs a listener)".to_owned())
        }
        other => return Err(format!("unknown action `{other}`")),
    })
}

fn arg(raw: &RawArg) -> Result<ArgCmp, String> {
    if raw.index > 5 {
        return Err(format!("args: index {} is out of 0..5", raw.index));
    }
    let op = match raw.op.as_str() {
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
        other => return Err(format!("args: unknown operator `{other}`")),
    };
    Ok(ArgCmp {
        index: raw.index as u8,
        op,
        value: raw.value,
        value_two: raw.value_two,
    })
}

fn filter(raw: RawFilter) -> Result<RuleFilter, String> {
    let min_kernel =
        match raw.min_kernel {
            None => None,
            Some(text) => Some(kernel_version(&text).ok_or_else(|| {
                format!("minKernel: `{text}` is not a kernel version such as 4.8")
            })?),
        };
    Ok(RuleFilter {
        caps: raw.caps,
        arches: raw.arches,
        min_kernel,
    })
}

/// `(major, minor)` of a version such as `4.8` or `6.18.0-1-amd64`.
pub fn kernel_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dockers_format() {
        let json = br#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"name": "mkdir", "action": "SCMP_ACT_KILL"}
            ]
        }"#;
        let profile = Profile::from_json(json).unwrap();
        assert_eq!(profile.default_action, Action::Errno(1));
        assert_eq!(profile.rules.len(), 5);
        assert_eq!(profile.rules[1].args[0].op, CmpOp::MaskedEq);
        assert_eq!(profile.rules[1].excludes.caps, ["CAP_SYS_ADMIN"]);
        assert_eq!(profile.rules[2].action, Action::Errno(38));
        assert_eq!(profile.rules[3].includes.min_kernel, Some((4, 8)));
        assert_eq!(profile.rules[4].names, ["mkdir"]);
        assert_eq!(profile.rules[4].action, Action::KillThread);
    }

    #[test]
    fn refuses_what_would_weaken_it() {
        let bad = |json: &str| Profile::from_json(json.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            bad(r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#),
            "defaultAction: unknown action `SCMP_ACT_MAYBE`"
        );
        assert_eq!(
            bad(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]}]}"#
            ),
            "syscalls[0]: args: unknown operator `SCMP_CMP_SIMILAR`"
        );
        assert!(bad("{").starts_with("not a seccomp profile: "));
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(kernel_version("x"), None);
    }
}
