//! Readiness keys of a service (`ready`, `watchdog`, `ready_timeout`) and
//! `depends_on`'s long form (Compose's `{NAME: {condition: ...}}`), with the
//! rules that tie them together.

use std::collections::BTreeMap;

use crate::diagnostic::{Mark, Report};
use crate::read::{choice, nonempty, scalar, scalar_text, Fields};
use crate::service::Read;
use crate::tree::{Node, Value};
use crate::types::{Condition, Ready, RestartPolicy, Service};
use crate::units;

const DEPENDENCY_KEYS: &[&str] = &["condition"];

/// The names of `depends_on`'s long form, where each is written, and their conditions.
pub type LongForm = (Vec<String>, Vec<Mark>, BTreeMap<String, Condition>);

/// `depends_on` as a mapping (its keys cannot repeat). None when `node` is not
/// a mapping (the list form, read elsewhere).
pub fn long_form(report: &mut Report, node: &Node) -> Option<LongForm> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    let (mut names, mut marks, mut conditions) = (Vec::new(), Vec::new(), BTreeMap::new());
    for entry in entries {
        let name = &entry.key;
        if name.is_empty() {
            report.error(entry.key_mark, "depends_on: must not be empty");
            continue;
        }
        let condition = match &entry.value.value {
            // `db:` with nothing, or `db: {}`: the default condition.
            Value::Null => Condition::default(),
            _ => dependency(report, name, &entry.value),
        };
        names.push(name.clone());
        marks.push(entry.key_mark);
        conditions.insert(name.clone(), condition);
    }
    Some((names, marks, conditions))
}

/// `{condition: ...}` of dependency `name`.
fn dependency(report: &mut Report, name: &str, node: &Node) -> Condition {
    let what = format!("depends_on {name}");
    let Some(fields) = Fields::of(report, node, DEPENDENCY_KEYS, &what) else {
        return Condition::default();
    };
    fields
        .read(report, "condition", |node| {
            choice::<Condition>(scalar_text(node, "a condition")?)
        })
        .unwrap_or_default()
}

/// `ready`, `watchdog` and `ready_timeout` of one service.
pub fn readiness(report: &mut Report, fields: &Fields, service: &mut Service) {
    if let Some(ready) = fields.read(report, "ready", |node| {
        // Only `notify` is written: without the key a service is ready once it runs.
        match nonempty(node)?.as_str() {
            "notify" => Ok(Ready::Notify),
            other => Err(format!(
                "`{other}` is not notify (without `ready`, a service is ready once it runs)"
            )),
        }
    }) {
        service.ready = ready;
    }
    let duration = || scalar(units::duration, "a duration such as 10s or 2m");
    service.watchdog = fields.read(report, "watchdog", duration());
    if let Some(timeout) = fields.read(report, "ready_timeout", duration()) {
        service.ready_timeout = timeout;
    }
    for key in ["watchdog", "ready_timeout"] {
        let Some(entry) = fields.get(key) else {
            continue;
        };
        if service.ready != Ready::Notify {
            report.error(entry.key_mark, format!("{key}: needs `ready: notify`"));
        }
    }
    let zero = |key: &str, value: Option<std::time::Duration>, report: &mut Report| {
        if let (Some(value), Some(node)) = (value, fields.node(key)) {
            if value.is_zero() {
                report.error(node.mark, format!("{key}: must be longer than 0"));
            }
        }
    };
    zero("watchdog", service.watchdog, report);
    zero("ready_timeout", Some(service.ready_timeout), report);
}

/// Conditions that cannot be met: a dependency that never completes (restarts
/// always) waited on with `service_completed_successfully`.
pub fn check_conditions(report: &mut Report, services: &[Read]) {
    for read in services {
        let service = &read.service;
        for (name, &mark) in service.depends_on.iter().zip(&read.dependency_marks) {
            let condition = service.condition(name);
            let Some(dependency) = services.iter().find(|r| &r.service.name == name) else {
                continue;
            };
            if condition == Condition::ServiceCompletedSuccessfully
                && dependency.service.restart == RestartPolicy::Always
            {
                report.error(
                    mark,
                    format!(
                        "depends_on {name}: service_completed_successfully waits for {name} to exit, but it has `restart: always`"
                    ),
                );
            }
        }
    }
}
