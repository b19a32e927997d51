//! `depends_on` across services: names that exist, no self-dependency, no
//! cycles; and the start order that follows from it.

use std::collections::{BTreeSet, HashMap};

use crate::diagnostic::Report;
use crate::service::Read;
use crate::suggest::did_you_mean;
use crate::types::{Config, Service};

pub fn check(report: &mut Report, services: &[Read]) {
    let index: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, read)| (read.service.name.as_str(), i))
        .collect();
    // edges[i]: (dependency, position in service i's depends_on)
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); services.len()];
    for (i, read) in services.iter().enumerate() {
        let service = &read.service;
        for (position, (name, &mark)) in service
            .depends_on
            .iter()
            .zip(&read.dependency_marks)
            .enumerate()
        {
            match index.get(name.as_str()) {
                Some(&j) if j == i => report.error(
                    mark,
                    format!("depends_on: service {name} depends on itself"),
                ),
                Some(&j) => edges[i].push((j, position)),
                None => {
                    let hint = did_you_mean(name, index.keys().copied());
                    report.error(mark, format!("depends_on: unknown service `{name}`{hint}"));
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        // Start the cycle at the service listed first in the file: stable text.
        let first = (0..cycle.len()).min_by_key(|&k| cycle[k].0).unwrap_or(0);
        let mut names: Vec<&str> = Vec::with_capacity(cycle.len() + 1);
        for k in 0..=cycle.len() {
            names.push(&services[cycle[(first + k) % cycle.len()].0].service.name);
        }
        let (from, position) = cycle[first];
        let mark = services[from].dependency_marks[position];
        report.error(
            mark,
            format!("depends_on: dependency cycle: {}", names.join(" -> ")),
        );
    }
}

/// One cycle per back edge of a depth-first search in file order, each as
/// (service, position in its depends_on of the edge to the next one).
fn cycles(edges: &[Vec<(usize, usize)>]) -> Vec<Vec<(usize, usize)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Seen {
        No,
        OnPath,
        Done,
    }
    let mut seen = vec![Seen::No; edges.len()];
    let mut found = Vec::new();
    for start in 0..edges.len() {
        if seen[start] != Seen::No {
            continue;
        }
        // (service, index of the next edge to follow); iterative: no recursion depth limit.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        seen[start] = Seen::OnPath;
        while let Some(&(node, next)) = path.last() {
            let Some(&(dependency, _)) = edges[node].get(next) else {
                seen[node] = Seen::Done;
                path.pop();
                continue;
            };
            if let Some(top) = path.last_mut() {
                top.1 += 1;
            }
            match seen[dependency] {
                Seen::No => {
                    seen[dependency] = Seen::OnPath;
                    path.push((dependency, 0));
                }
                Seen::OnPath => {
                    let from = path.iter().position(|&(n, _)| n == dependency).unwrap_or(0);
                    // Each step's edge is the one just followed (its counter minus one).
                    found.push(
                        path[from..]
                            .iter()
                            .map(|&(n, k)| (n, edges[n][k - 1].1))
                            .collect(),
                    );
                }
                Seen::Done => {}
            }
        }
    }
    found
}

impl Config {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Every service, dependencies before the services that need them; otherwise
    /// in file order. (A cycle, which validation refuses, ends up in file order.)
    pub fn start_order(&self) -> Vec<&Service> {
        let index: HashMap<&str, usize> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut waiting_on: Vec<usize> = vec![0; self.services.len()];
        let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); self.services.len()];
        for (i, service) in self.services.iter().enumerate() {
            let mut deps: Vec<usize> = service
                .depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect();
            deps.sort_unstable();
            deps.dedup();
            for dep in deps.into_iter().filter(|&d| d != i) {
                waiting_on[i] += 1;
                needed_by[dep].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..self.services.len())
            .filter(|&i| waiting_on[i] == 0)
            .collect();
        let mut order = Vec::with_capacity(self.services.len());
        let mut placed = vec![false; self.services.len()];
        while let Some(i) = ready.pop_first() {
            order.push(&self.services[i]);
            placed[i] = true;
            for &next in &needed_by[i] {
                waiting_on[next] -= 1;
                if waiting_on[next] == 0 {
                    ready.insert(next);
                }
            }
        }
        order.extend(
            self.services
                .iter()
                .zip(&placed)
                .filter(|(_, &p)| !p)
                .map(|(s, _)| s),
        );
        order
    }
}
