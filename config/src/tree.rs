//! A YAML document as a tree whose nodes remember where they were written.
//!
//! Built from the parser's events without recursion, with bounded depth and
//! size (aliases included), so that no input can exhaust the stack or memory.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, Tag};

use crate::diagnostic::{Mark, Report};

/// Deepest nesting of lists and mappings accepted; a service list needs 4.
pub const MAX_DEPTH: usize = 64;
/// Most nodes accepted in one file, counting every alias expansion.
pub const MAX_NODES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Node {
    pub mark: Mark,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    /// `~`, `null` or nothing at all.
    Null,
    /// Any other scalar, as text, whatever its quoting.
    Scalar(String),
    Seq(Vec<Node>),
    /// In file order; keys are unique.
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_mark: Mark,
    pub value: Node,
}

impl Value {
    /// What was found, for messages like "expected a list, found a mapping".
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "nothing".to_owned(),
            Value::Scalar(text) if text.chars().count() > 40 => {
                let start: String = text.chars().take(40).collect();
                format!("`{start}...`")
            }
            Value::Scalar(text) => format!("`{text}`"),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

fn mark(marker: &Marker) -> Mark {
    Mark {
        line: marker.line().max(1),
        column: marker.col() + 1,
    }
}

fn mark_of(span: &Span) -> Mark {
    mark(&span.start)
}

/// Parses the single document of `text`. Problems that leave the tree usable
/// (duplicate keys, unsupported tags) are reported and parsing goes on; a
/// syntax error ends it with None. An empty file gives None without a report.
pub fn parse(text: &str, report: &mut Report) -> Option<Node> {
    let mut builder = Builder {
        report,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
    };
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(err) => {
                let mut message = format!("YAML syntax error: {}", err.info());
                if let Some(open) = builder.stack.last() {
                    message.push_str(&open.while_parsing(text));
                }
                builder.report.error(mark(err.marker()), message);
                return None;
            }
        };
        let at = mark_of(&span);
        let step = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    builder
                        .report
                        .error(at, "a second YAML document: the file must hold one");
                    return None;
                }
                Ok(())
            }
            Event::Scalar(text, style, anchor, tag) => {
                builder.scalar(at, &text, style, anchor, tag.as_deref())
            }
            Event::Alias(id) => builder.alias(at, id),
            Event::SequenceStart(anchor, tag) => builder.open(at, anchor, tag.as_deref(), false),
            Event::MappingStart(anchor, tag) => builder.open(at, anchor, tag.as_deref(), true),
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            _ => Ok(()),
        };
        if step.is_err() {
            return None;
        }
    }
    builder.root
}

/// Parsing cannot go on (already reported).
struct Stop;

/// A list or mapping whose end has not been seen yet.
enum Open {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<Entry>,
        seen: HashMap<String, Mark>,
        /// The key waiting for its value; `Some(None)` for a key that was
        /// rejected, whose value is dropped.
        key: Option<Option<(String, Mark)>>,
    },
}

impl Open {
    /// " (in the flow sequence that starts at 3:14)": where the construct
    /// that the error left unclosed began, as PyYAML says it.
    fn while_parsing(&self, text: &str) -> String {
        let (at, map) = match self {
            Open::Seq { mark, .. } => (*mark, false),
            Open::Map { mark, .. } => (*mark, true),
        };
        let first = text
            .lines()
            .nth(at.line - 1)
            .and_then(|line| line.chars().nth(at.column - 1));
        let what = match (first, map) {
            (Some('['), _) => "flow sequence",
            (Some('{'), _) => "flow mapping",
            (_, false) => "list",
            (_, true) => "mapping",
        };
        format!(" (in the {what} that starts at {}:{})", at.line, at.column)
    }
}

/// An anchored node, ready to be copied where an alias names it.
struct Anchored {
    node: Node,
    size: usize,
    height: usize,
}

struct Builder<'r> {
    report: &'r mut Report,
    stack: Vec<Open>,
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
    root: Option<Node>,
}

impl Builder<'_> {
    fn count(&mut self, at: Mark, nodes: usize) -> Result<(), Stop> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            let message =
                format!("the document has more than {MAX_NODES} nodes (aliases included)");
            self.report.error(at, message);
            return Err(Stop);
        }
        Ok(())
    }

    /// Whether a tag forces a string; tags outside YAML's core schema are reported.
    fn string_tag(&mut self, at: Mark, tag: Option<&Tag>) -> bool {
        match tag {
            None => false,
            Some(tag) if tag.is_yaml_core_schema() => tag.suffix == "str",
            Some(tag) => {
                self.report
                    .error(at, format!("unsupported YAML tag `{tag}`"));
                false
            }
        }
    }

    fn scalar(
        &mut self,
        at: Mark,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
    ) -> Result<(), Stop> {
        self.count(at, 1)?;
        let forced_string = self.string_tag(at, tag);
        let null =
            style == ScalarStyle::Plain && matches!(text, "" | "~" | "null" | "Null" | "NULL");
        let value = if null && !forced_string {
            Value::Null
        } else {
            Value::Scalar(text.to_owned())
        };
        self.complete(Node { mark: at, value }, anchor);
        Ok(())
    }

    fn alias(&mut self, at: Mark, id: usize) -> Result<(), Stop> {
        let Some(anchored) = self.anchors.get(&id) else {
            self.report.error(at, "alias to an unknown anchor");
            return Err(Stop);
        };
        let (size, height) = (anchored.size, anchored.height);
        if self.stack.len() + height > MAX_DEPTH + 1 {
            self.report
                .error(at, format!("nested deeper than {MAX_DEPTH} levels"));
            return Err(Stop);
        }
        self.count(at, size)?;
        let mut node = self.anchors[&id].node.clone();
        // Point at the alias: that is where the value is used.
        node.mark = at;
        self.attach(node);
        Ok(())
    }

    fn open(&mut self, at: Mark, anchor: usize, tag: Option<&Tag>, map: bool) -> Result<(), Stop> {
        if self.stack.len() >= MAX_DEPTH {
            self.report
                .error(at, format!("nested deeper than {MAX_DEPTH} levels"));
            return Err(Stop);
        }
        self.count(at, 1)?;
        self.string_tag(at, tag);
        self.stack.push(if map {
            Open::Map {
                mark: at,
                anchor,
                entries: Vec::new(),
                seen: HashMap::new(),
                key: None,
            }
        } else {
            Open::Seq {
                mark: at,
                anchor,
                items: Vec::new(),
            }
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), Stop> {
        let (node, anchor) = match self.stack.pop() {
            Some(Open::Seq {
                mark,
                anchor,
                items,
            }) => (
                Node {
                    mark,
                    value: Value::Seq(items),
                },
                anchor,
            ),
            Some(Open::Map {
                mark,
                anchor,
                entries,
                ..
            }) => {
                let entries = merge_keys(self.report, entries);
                (
                    Node {
                        mark,
                        value: Value::Map(entries),
                    },
                    anchor,
                )
            }
            None => return Ok(()),
        };
        self.complete(node, anchor);
        Ok(())
    }

    /// A node is complete: remember it if anchored, then place it.
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let (size, height) = measure(&node);
            self.anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    size,
                    height,
                },
            );
        }
        self.attach(node);
    }

    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries, seen, key, ..
            }) => match key.take() {
                None => {
                    *key = Some(match node.value {
                        Value::Scalar(text) => Some((text, node.mark)),
                        other => {
                            let message =
                                format!("a key must be a string, found {}", other.describe());
                            self.report.error(node.mark, message);
                            None
                        }
                    });
                }
                Some(None) => {}
                Some(Some((name, key_mark))) => {
                    if let Some(first) = seen.get(&name) {
                        let message =
                            format!("duplicate key `{name}` (first at line {})", first.line);
                        self.report.error(key_mark, message);
                    } else {
                        seen.insert(name.clone(), key_mark);
                        entries.push(Entry {
                            key: name,
                            key_mark,
                            value: node,
                        });
                    }
                }
            },
        }
    }
}

/// Size (nodes) and height of a tree; its height is bounded by the builder.
fn measure(node: &Node) -> (usize, usize) {
    let children: Box<dyn Iterator<Item = &Node>> = match &node.value {
        Value::Null | Value::Scalar(_) => return (1, 1),
        Value::Seq(items) => Box::new(items.iter()),
        Value::Map(entries) => Box::new(entries.iter().map(|e| &e.value)),
    };
    children
        .map(measure)
        .fold((1, 1), |(size, height), (s, h)| {
            (size + s, height.max(h + 1))
        })
}

/// Applies YAML merge keys (`<<: *base`): entries of the merged mappings that
/// the mapping does not set itself. Earlier merged mappings win over later ones.
fn merge_keys(report: &mut Report, entries: Vec<Entry>) -> Vec<Entry> {
    if !entries.iter().any(|e| e.key == "<<") {
        return entries;
    }
    let (merges, mut own): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.key == "<<");
    let mut merged = Vec::new();
    for merge in merges {
        match merge.value.value {
            Value::Map(base) => merged.push(base),
            Value::Seq(items) => {
                for item in items {
                    match item.value {
                        Value::Map(base) => merged.push(base),
                        other => report.error(
                            item.mark,
                            format!("`<<` merges mappings, found {}", other.describe()),
                        ),
                    }
                }
            }
            other => {
                let message = format!(
                    "`<<` merges a mapping or a list of mappings, found {}",
                    other.describe()
                );
                report.error(merge.value.mark, message);
            }
        }
    }
    let mut present: HashSet<String> = own.iter().map(|e| e.key.clone()).collect();
    for entry in merged.into_iter().flatten() {
        if present.insert(entry.key.clone()) {
            own.push(entry);
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tree(text: &str) -> (Option<Node>, Vec<String>) {
        let mut report = Report::new(Path::new("t.yaml"));
        let root = parse(text, &mut report);
        let problems = report
            .into_errors()
            .0
            .into_iter()
            .map(|d| d.to_string())
            .collect();
        (root, problems)
    }

    fn entries(node: &Node) -> &[Entry] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let (root, problems) = tree("a:\n  b: [x, 'y']\n");
        assert!(problems.is_empty());
        let a = &entries(root.as_ref().unwrap())[0];
        assert_eq!(
            (a.key.as_str(), a.key_mark),
            ("a", Mark { line: 1, column: 1 })
        );
        let b = &entries(&a.value)[0];
        assert_eq!(b.key_mark, Mark { line: 2, column: 3 });
        let Value::Seq(items) = &b.value.value else {
            panic!("not a list")
        };
        assert_eq!(
            items[1].mark,
            Mark {
                line: 2,
                column: 10
            }
        );
        assert!(matches!(&items[1].value, Value::Scalar(y) if y == "y"));
    }

    #[test]
    fn plain_null_is_null_but_quoted_null_is_text() {
        let (root, _) = tree("a: ~\nb: 'null'\nc:\n");
        let values: Vec<&Value> = entries(root.as_ref().unwrap())
            .iter()
            .map(|e| &e.value.value)
            .collect();
        assert!(matches!(values[0], Value::Null));
        assert!(matches!(values[1], Value::Scalar(s) if s == "null"));
        assert!(matches!(values[2], Value::Null));
    }

    #[test]
    fn duplicate_keys_keep_the_first() {
        let (root, problems) = tree("a: 1\na: 2\n");
        assert_eq!(
            problems,
            ["t.yaml:2:1: duplicate key `a` (first at line 1)"]
        );
        let a = &entries(root.as_ref().unwrap())[0];
        assert!(matches!(&a.value.value, Value::Scalar(v) if v == "1"));
    }

    #[test]
    fn merge_keys_fill_in_what_is_not_set() {
        let (root, problems) =
            tree("x: &x {a: 1, b: 2}\ny: &y {b: 3, c: 4}\nz:\n  <<: [*x, *y]\n  a: 0\n");
        assert!(problems.is_empty(), "{problems:?}");
        let z = &entries(root.as_ref().unwrap())[2].value;
        let merged: Vec<(String, String)> = entries(z)
            .iter()
            .map(|e| match &e.value.value {
                Value::Scalar(v) => (e.key.clone(), v.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected =
            [("a", "0"), ("b", "2"), ("c", "4")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(merged, expected);
    }

    #[test]
    fn non_string_keys_are_refused() {
        let (_, problems) = tree("[a]: 1\n");
        assert_eq!(
            problems,
            ["t.yaml:1:1: a key must be a string, found a list"]
        );
    }
}
