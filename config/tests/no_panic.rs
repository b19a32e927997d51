//! Whatever the input, the parser answers with a config or with errors: it
//! never panics. Bounded case counts keep CI fast.

use std::path::Path;

use proptest::prelude::*;

/// A YAML-ish document: service-list keys and tricky values, rendered in
/// block or flow style, so that most inputs get past the syntax.
#[derive(Debug, Clone)]
enum Doc {
    Scalar(String),
    Seq(Vec<Doc>, bool),
    Map(Vec<(String, Doc)>, bool),
}

/// Every key the documentation lists, plus names, typos and YAML oddities.
fn keys() -> Vec<String> {
    let doc = include_str!("../../docs/config.md");
    let documented = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next());
    let extra = ["services", "web", "db", "<<", "comand", "Web", ""];
    documented.chain(extra).map(str::to_owned).collect()
}

const VALUES: &[&str] = &[
    "10s",
    "1.5s",
    "100ms",
    "2m",
    "1h",
    "10x",
    "-1s",
    "0",
    "-5",
    "64M",
    "0M",
    "1G",
    "99999999999999999999G",
    "0.5",
    "1e300",
    "NaN",
    "inf",
    "TERM",
    "SIGKILL",
    "99",
    "true",
    "false",
    "yes",
    "~",
    "null",
    "''",
    "\"\"",
    "web",
    "db",
    "/",
    ".",
    "..",
    "./x",
    "/nonexistent",
    "a/b",
    "1000:1000",
    "1000:",
    "pid",
    "mount",
    "never",
    "on-failure",
    "always",
    "auto",
    "v1",
    "v2",
    "&a x",
    "*a",
    "!tag x",
    "!!str 5",
    "|\n  x",
    "\"a\\0b\"",
];

fn doc() -> impl Strategy<Value = Doc> {
    let leaf = prop_oneof![
        prop::sample::select(VALUES).prop_map(|v| Doc::Scalar(v.to_owned())),
        "[a-zA-Z0-9 ./:_-]{0,12}".prop_map(Doc::Scalar),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let key = prop_oneof![prop::sample::select(keys()), "[a-z_]{1,8}"];
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..6), any::<bool>())
                .prop_map(|(v, f)| Doc::Seq(v, f)),
            (prop::collection::vec((key, inner), 0..6), any::<bool>())
                .prop_map(|(v, f)| Doc::Map(v, f)),
        ]
    })
}

fn render(doc: &Doc, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match doc {
        Doc::Scalar(text) => out.push_str(text),
        Doc::Seq(items, flow) if *flow || items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, indent, out);
            }
            out.push(']');
        }
        Doc::Map(entries, flow) if *flow || entries.is_empty() => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push_str(": ");
                render(value, indent, out);
            }
            out.push('}');
        }
        Doc::Seq(items, _) => {
            for item in items {
                out.push('\n');
                out.push_str(&pad);
                out.push_str("- ");
                render(item, indent + 2, out);
            }
        }
        Doc::Map(entries, _) => {
            for (key, value) in entries {
                out.push('\n');
                out.push_str(&pad);
                out.push_str(key);
                out.push_str(": ");
                render(value, indent + 2, out);
            }
        }
    }
}

/// A rendered document with a few bytes changed: inserted, deleted or replaced.
fn mutated() -> impl Strategy<Value = String> {
    let edits = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0u8..3,
            "[\\[\\]{}:,&*!|>'\"#\\- \n\ta]",
        ),
        0..4,
    );
    (doc(), edits).prop_map(|(doc, edits)| {
        let mut text = String::new();
        render(&doc, 0, &mut text);
        let mut chars: Vec<char> = text.chars().collect();
        for (at, kind, piece) in edits {
            let c = piece.chars().next().unwrap_or(' ');
            if chars.is_empty() {
                chars.push(c);
                continue;
            }
            let i = at.index(chars.len());
            match kind {
                0 => chars.insert(i, c),
                1 => drop(chars.remove(i)),
                _ => chars[i] = c,
            }
        }
        chars.into_iter().collect()
    })
}

fn check(bytes: &[u8]) {
    // Errors are fine; a panic fails the test.
    let _ = config::parse_bytes(bytes, Path::new("/etc/appliance/services.yaml"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn yaml_punctuation_never_panics(text in "[\\[\\]{}:,&*!|>'\"#%@`\\-? \n\ta-z0-9]{0,200}") {
        check(text.as_bytes());
    }

    #[test]
    fn yamlish_documents_never_panic(text in mutated()) {
        check(text.as_bytes());
    }

    #[test]
    fn service_lists_never_panic(services in prop::collection::vec(doc(), 0..4)) {
        let mut text = String::from("services:");
        for (i, service) in services.iter().enumerate() {
            text.push_str(&format!("\n  s{i}: "));
            render(service, 4, &mut text);
        }
        check(text.as_bytes());
    }
}
