//! Typed values out of tree nodes; what is wrong is reported where it is written.

use crate::diagnostic::Report;
use crate::suggest::unknown_key_hint;
use crate::tree::{Entry, Node, Value};

/// The text of a scalar; `expected` names what else would have been right.
pub fn scalar_text<'a>(node: &'a Node, expected: &str) -> Result<&'a str, String> {
    match &node.value {
        Value::Scalar(text) if text.contains('\0') => Err("contains a NUL character".to_owned()),
        Value::Scalar(text) => Ok(text),
        other => Err(format!("expected {expected}, found {}", other.describe())),
    }
}

/// Any scalar as a string: `8080` and `true` are text too where text is expected.
pub fn string(node: &Node) -> Result<String, String> {
    scalar_text(node, "a string").map(str::to_owned)
}

/// A non-empty string.
pub fn nonempty(node: &Node) -> Result<String, String> {
    let text = string(node)?;
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(text)
}

/// Adapts a parser of text (see `units`) to a node.
pub fn scalar<T>(
    parse: impl Fn(&str) -> Result<T, String>,
    expected: &'static str,
) -> impl Fn(&Node) -> Result<T, String> {
    move |node| parse(scalar_text(node, expected)?)
}

pub fn boolean(node: &Node) -> Result<bool, String> {
    match scalar_text(node, "true or false")? {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(format!("expected true or false, found `{other}`")),
    }
}

/// The items of a list; a single scalar counts as a list of one.
pub fn items(node: &Node) -> Result<&[Node], String> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        Value::Scalar(_) => Ok(std::slice::from_ref(node)),
        other => Err(format!("expected a list, found {}", other.describe())),
    }
}

/// A mapping's entries with only `known` keys: the others are reported.
pub struct Fields<'a> {
    entries: &'a [Entry],
}

impl<'a> Fields<'a> {
    /// None (reported as `what: expected a mapping...`) when `node` is no mapping.
    pub fn of(
        report: &mut Report,
        node: &'a Node,
        known: &[&str],
        what: &str,
    ) -> Option<Fields<'a>> {
        let Value::Map(entries) = &node.value else {
            report.error(
                node.mark,
                format!(
                    "{what}: expected a mapping, found {}",
                    node.value.describe()
                ),
            );
            return None;
        };
        for entry in entries {
            if !known.contains(&entry.key.as_str()) {
                let hint = unknown_key_hint(&entry.key, known.iter().copied());
                report.error(entry.key_mark, format!("unknown key `{}`{hint}", entry.key));
            }
        }
        Some(Fields { entries })
    }

    pub fn get(&self, key: &str) -> Option<&'a Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn node(&self, key: &str) -> Option<&'a Node> {
        self.get(key).map(|e| &e.value)
    }

    /// The value of `key` parsed; None when absent or wrong (reported as `key: why`).
    pub fn read<T>(
        &self,
        report: &mut Report,
        key: &str,
        parse: impl Fn(&Node) -> Result<T, String>,
    ) -> Option<T> {
        let node = self.node(key)?;
        parse(node)
            .map_err(|why| report.error(node.mark, format!("{key}: {why}")))
            .ok()
    }
}

/// One of an enum's names (`restart: always`), worded for people rather than
/// in serde's terms ("unknown variant").
pub fn choice<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    use serde::de::value::StrDeserializer;
    T::deserialize(StrDeserializer::<ChoiceError>::new(text)).map_err(|err| err.0)
}

/// serde's error for `choice`, with our wording for an unknown name.
#[derive(Debug)]
struct ChoiceError(String);

impl std::fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChoiceError {}

impl serde::de::Error for ChoiceError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        ChoiceError(msg.to_string())
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let hint = crate::suggest::did_you_mean(variant, expected.iter().copied());
        ChoiceError(format!(
            "`{variant}` is not one of {}{hint}",
            expected.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RestartPolicy;

    #[test]
    fn unknown_names_are_worded_without_serde_terms() {
        let err = choice::<RestartPolicy>("alwyas").unwrap_err();
        assert!(!err.contains("variant"), "{err}");
        assert!(err.starts_with("`alwyas` is not one of "), "{err}");
        assert!(err.ends_with("did you mean always?"), "{err}");
    }
}
