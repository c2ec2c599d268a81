//! The stage DAG: topological order, cycle detection, upstream/downstream closures and
//! rendering as Mermaid or Graphviz dot.

use std::collections::BTreeSet;

use crate::spec::{DEFAULT_OUTPUT, Pipeline};

/// Topological order of nodes given each node's upstream list. Ties keep index order (file
/// order), so the order is deterministic. `Err` holds one cycle as a closed chain
/// `[a, b, a]` of node indices.
pub fn topo_order(upstream: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = upstream.len();
    let mut indegree: Vec<usize> = upstream.iter().map(|u| u.iter().filter(|&&j| j < n).count()).collect();
    let mut downstream = vec![Vec::new(); n];
    for (i, ups) in upstream.iter().enumerate() {
        for &j in ups.iter().filter(|&&j| j < n) {
            downstream[j].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &downstream[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycle(upstream, &indegree))
}

/// Walks upstream edges from a node left with unmet inputs until a node repeats.
fn find_cycle(upstream: &[Vec<usize>], indegree: &[usize]) -> Vec<usize> {
    let Some(start) = (0..upstream.len()).find(|&i| indegree[i] > 0) else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let Some(&next) = upstream[cur].iter().find(|&&j| indegree.get(j).is_some_and(|&d| d > 0)) else {
            return path;
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            // `path` follows upstream edges; reverse it so the chain reads in data-flow order.
            let mut cycle: Vec<usize> = path[pos..].to_vec();
            cycle.reverse();
            // Start at the stage written first, so the message is stable.
            if let Some(min) = cycle.iter().enumerate().min_by_key(|(_, v)| **v).map(|(k, _)| k) {
                cycle.rotate_left(min);
            }
            let first = cycle[0];
            cycle.push(first);
            return cycle;
        }
        path.push(next);
        cur = next;
    }
}

/// `roots` and everything upstream of them.
pub fn upstream_closure(p: &Pipeline, roots: &[usize]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = roots.to_vec();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(p.upstream(i));
        }
    }
    seen
}

/// `roots` and everything downstream of them.
pub fn downstream_closure(p: &Pipeline, roots: &[usize]) -> BTreeSet<usize> {
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    let mut stack = roots.to_vec();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend((0..p.stages.len()).filter(|&j| p.upstream(j).contains(&i)));
        }
    }
    seen
}

/// Graph output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// Renders the pipeline DAG.
pub fn render(p: &Pipeline, format: GraphFormat) -> String {
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for s in &p.stages {
                out.push_str(&format!("    {}[\"{}<br/><i>{}</i>\"]\n", s.name, s.name, s.kind));
            }
            for s in &p.stages {
                for i in &s.inputs {
                    if i.output == DEFAULT_OUTPUT {
                        out.push_str(&format!("    {} --> {}\n", i.stage, s.name));
                    } else {
                        out.push_str(&format!("    {} -->|{}| {}\n", i.stage, i.output, s.name));
                    }
                }
            }
        }
        GraphFormat::Dot => {
            out.push_str(&format!("digraph \"{}\" {{\n    rankdir=LR;\n    node [shape=box];\n", p.name));
            for s in &p.stages {
                out.push_str(&format!("    \"{}\" [label=\"{}\\n({})\"];\n", s.name, s.name, s.kind));
            }
            for s in &p.stages {
                for i in &s.inputs {
                    if i.output == DEFAULT_OUTPUT {
                        out.push_str(&format!("    \"{}\" -> \"{}\";\n", i.stage, s.name));
                    } else {
                        out.push_str(&format!(
                            "    \"{}\" -> \"{}\" [label=\"{}\"];\n",
                            i.stage, s.name, i.output
                        ));
                    }
                }
            }
            out.push_str("}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn orders_and_finds_cycles() {
        assert_eq!(topo_order(&[vec![], vec![0], vec![0], vec![1, 2]]).unwrap(), [0, 1, 2, 3]);
        assert_eq!(topo_order(&[vec![2], vec![0], vec![1]]).unwrap_err(), [0, 1, 2, 0]);
        assert_eq!(topo_order(&[vec![0]]).unwrap_err(), [0, 0]);
    }

    proptest! {
        /// For random DAGs (edges only from lower to higher index, then shuffled labels),
        /// every node appears once and after all its upstreams.
        #[test]
        fn topo_order_respects_every_edge(
            n in 1usize..40,
            edges in proptest::collection::vec((0usize..40, 0usize..40), 0..120),
            perm_seed in any::<u64>(),
        ) {
            // A random relabelling so the order is not just index order.
            let mut labels: Vec<usize> = (0..n).collect();
            let mut s = perm_seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                labels.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut upstream = vec![Vec::new(); n];
            for (a, b) in edges {
                let (a, b) = (a % n, b % n);
                if a < b { upstream[labels[b]].push(labels[a]); }
            }
            let order = topo_order(&upstream).unwrap();
            prop_assert_eq!(order.len(), n);
            let mut pos = vec![usize::MAX; n];
            for (k, &i) in order.iter().enumerate() {
                prop_assert_eq!(pos[i], usize::MAX, "node {} appears twice", i);
                pos[i] = k;
            }
            for (i, ups) in upstream.iter().enumerate() {
                for &j in ups { prop_assert!(pos[j] < pos[i], "edge {} -> {} violated", j, i); }
            }
        }

        /// Adding a back edge to a chain always yields a cycle that is a real closed path.
        #[test]
        fn cycles_are_real_paths(n in 2usize..20, from in 0usize..20, to in 0usize..20) {
            let (from, to) = (from % n, to % n);
            let mut upstream: Vec<Vec<usize>> = (0..n).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect();
            let (lo, hi) = (from.min(to), from.max(to));
            upstream[lo].push(hi);
            let cycle = topo_order(&upstream).unwrap_err();
            prop_assert_eq!(cycle.first(), cycle.last());
            for w in cycle.windows(2) {
                prop_assert!(upstream[w[1]].contains(&w[0]), "{} is not upstream of {}", w[0], w[1]);
            }
        }
    }
}
