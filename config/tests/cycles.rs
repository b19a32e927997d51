//! Dependency cycles anywhere in the graph, not only through the first service:
//! random graphs checked against a plain reference (reachability).

use std::path::Path;

use proptest::prelude::*;

/// `edges[i]` lists the services service `i` depends on (never itself).
fn yaml(edges: &[Vec<usize>]) -> String {
    let mut text = String::from("services:\n");
    for (i, deps) in edges.iter().enumerate() {
        let names: Vec<String> = deps.iter().map(|d| format!("s{d}")).collect();
        text += &format!(
            "  s{i}:\n    command: x\n    depends_on: [{}]\n",
            names.join(", ")
        );
    }
    text
}

/// reach[i][j]: j can be reached from i by one or more edges (Floyd-Warshall).
fn reachability(edges: &[Vec<usize>]) -> Vec<Vec<bool>> {
    let n = edges.len();
    let mut reach = vec![vec![false; n]; n];
    for (i, deps) in edges.iter().enumerate() {
        for &d in deps {
            reach[i][d] = true;
        }
    }
    for k in 0..n {
        for i in 0..n {
            for j in 0..n {
                if reach[i][k] && reach[k][j] {
                    reach[i][j] = true;
                }
            }
        }
    }
    reach
}

/// The cycles the parser reports, as lists of service numbers ("s1 -> s2 -> s1").
fn reported_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let text = yaml(edges);
    let Err(errors) = config::parse_str(&text, Path::new("/services.yaml")) else {
        return Vec::new();
    };
    errors
        .0
        .iter()
        .map(|d| {
            let cycle = d
                .message
                .strip_prefix("depends_on: dependency cycle: ")
                .unwrap_or_else(|| panic!("not a cycle error: {}\n{text}", d.message));
            cycle
                .split(" -> ")
                .map(|name| name[1..].parse().expect("s<number>"))
                .collect()
        })
        .collect()
}

/// Random graphs of up to 8 services, each depending on up to 3 others.
fn graph() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..=8).prop_flat_map(|n| {
        prop::collection::vec(prop::collection::btree_set(0..n, 0..=3), n).prop_map(|sets| {
            sets.into_iter()
                .enumerate()
                .map(|(i, deps)| deps.into_iter().filter(|&d| d != i).collect())
                .collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_cycle_is_found_and_every_reported_cycle_is_real(edges in graph()) {
        let reach = reachability(&edges);
        let cycles = reported_cycles(&edges);
        // Each reported cycle follows real edges and comes back to its start.
        for cycle in &cycles {
            prop_assert!(cycle.len() >= 3 && cycle.first() == cycle.last(), "{cycle:?}");
            for step in cycle.windows(2) {
                prop_assert!(edges[step[0]].contains(&step[1]), "{cycle:?} in {edges:?}");
            }
        }
        // Every service on some cycle is in a strongly connected group that a reported
        // cycle passes through (a depth-first search finds one back edge per group).
        for (i, from_i) in reach.iter().enumerate() {
            if from_i[i] {
                let group = |j: usize| j == i || (from_i[j] && reach[j][i]);
                prop_assert!(
                    cycles.iter().any(|c| c.iter().any(|&j| group(j))),
                    "the cycle through s{i} is not reported: {edges:?} -> {cycles:?}"
                );
            }
        }
        // No cycle, no cycle error; and then the start order puts dependencies first.
        if (0..edges.len()).all(|i| !reach[i][i]) {
            prop_assert!(cycles.is_empty());
            let config = config::parse_str(&yaml(&edges), Path::new("/services.yaml")).unwrap();
            let order: Vec<usize> = config.start_order().iter().map(|s| s.name[1..].parse().unwrap()).collect();
            for (i, deps) in edges.iter().enumerate() {
                let at = |s: usize| order.iter().position(|&o| o == s).unwrap();
                for &d in deps {
                    prop_assert!(at(d) < at(i), "s{d} after s{i}: {order:?}");
                }
            }
        }
    }
}

/// The case the issue names: a cycle among later services, not through the first.
#[test]
fn a_cycle_among_later_services_is_found() {
    assert_eq!(
        reported_cycles(&[vec![1], vec![2], vec![1]]),
        [vec![1, 2, 1]]
    );
}
