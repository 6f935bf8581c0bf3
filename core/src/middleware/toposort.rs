//! The ordering of middleware: a stable topological sort on `tag`/`before`/`after`.
//!
//! Each node belongs to a group (its tag, else its group, else none). `before: [G]` puts a
//! node ahead of every node of group G, `after: [G]` behind them. Among the nodes whose
//! predecessors are all placed, the earliest registered goes next, so unconstrained nodes
//! keep their registration order (this is `@hapi/topo`'s order, which NocoBase uses).

use std::fmt;

/// Where a node goes: its group and the groups it must precede or follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The node's own tag; other nodes refer to it in `before`/`after`.
    pub tag: Option<String>,
    /// A group shared with other nodes (used when there is no tag).
    pub group: Option<String>,
    /// Groups this node must run before.
    pub before: Vec<String>,
    /// Groups this node must run after.
    pub after: Vec<String>,
}

impl Placement {
    /// A node tagged `tag`.
    pub fn tag(tag: impl Into<String>) -> Self {
        Self {
            tag: Some(tag.into()),
            ..Self::default()
        }
    }

    /// A node in group `group`.
    pub fn group(group: impl Into<String>) -> Self {
        Self {
            group: Some(group.into()),
            ..Self::default()
        }
    }

    /// Also run before every node of `group`.
    pub fn before(mut self, group: impl Into<String>) -> Self {
        self.before.push(group.into());
        self
    }

    /// Also run after every node of `group`.
    pub fn after(mut self, group: impl Into<String>) -> Self {
        self.after.push(group.into());
        self
    }

    /// The group other nodes refer to: the tag, else the group.
    pub fn name(&self) -> Option<&str> {
        self.tag.as_deref().or(self.group.as_deref())
    }

    /// Whether no tag, group or constraint was given.
    pub fn is_unpositioned(&self) -> bool {
        self == &Self::default()
    }
}

/// Why a node was refused. The sorter is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SortError {
    /// The node names its own group in `before`.
    #[error("Item cannot come before itself: {0}")]
    BeforeItself(String),
    /// The node names its own group in `after`.
    #[error("Item cannot come after itself: {0}")]
    AfterItself(String),
    /// Adding the node would make the order cyclic.
    #[error("item added into group {0} created a dependencies error")]
    Cycle(String),
}

#[derive(Clone)]
struct Node<T> {
    item: T,
    placement: Placement,
}

/// Items kept in dependency order, re-sorted on every addition.
#[derive(Clone)]
pub struct TopoSorter<T> {
    nodes: Vec<Node<T>>,
    order: Vec<usize>,
}

impl<T> Default for TopoSorter<T> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            order: Vec::new(),
        }
    }
}

impl<T> fmt::Debug for TopoSorter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopoSorter")
            .field("len", &self.nodes.len())
            .finish()
    }
}

impl<T> TopoSorter<T> {
    /// An empty sorter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `item`; on a cycle or self-reference it is refused and the order is unchanged
    /// (NocoBase keeps the bad node and fails every later addition; we do not).
    pub fn add(&mut self, item: T, placement: Placement) -> Result<(), SortError> {
        if let Some(name) = placement.name() {
            if placement.before.iter().any(|g| g == name) {
                return Err(SortError::BeforeItself(name.to_owned()));
            }
            if placement.after.iter().any(|g| g == name) {
                return Err(SortError::AfterItself(name.to_owned()));
            }
        }
        let label = placement.name().unwrap_or("?").to_owned();
        self.nodes.push(Node { item, placement });
        match self.sort() {
            Some(order) => {
                self.order = order;
                Ok(())
            }
            None => {
                self.nodes.pop();
                Err(SortError::Cycle(label))
            }
        }
    }

    /// Whether some node has `group` as its tag or group.
    pub fn has_group(&self, group: &str) -> bool {
        self.nodes.iter().any(|n| n.placement.name() == Some(group))
    }

    /// The distinct tags and groups, in registration order.
    pub fn groups(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for name in self.nodes.iter().filter_map(|n| n.placement.name()) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// The items in order.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.order.iter().map(|&i| &self.nodes[i].item)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Kahn's algorithm, always taking the lowest registration index among ready nodes.
    fn sort(&self) -> Option<Vec<usize>> {
        let n = self.nodes.len();
        let must_precede = |a: usize, b: usize| {
            let (pa, pb) = (&self.nodes[a].placement, &self.nodes[b].placement);
            pb.name().is_some_and(|g| pa.before.iter().any(|x| x == g))
                || pa.name().is_some_and(|g| pb.after.iter().any(|x| x == g))
        };
        let successors: Vec<Vec<usize>> = (0..n)
            .map(|a| (0..n).filter(|&b| a != b && must_precede(a, b)).collect())
            .collect();
        let mut indegree = vec![0usize; n];
        for &b in successors.iter().flatten() {
            indegree[b] += 1;
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for &s in &successors[next] {
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    ready.insert(s);
                }
            }
        }
        (order.len() == n).then_some(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(entries: &[(&'static str, Placement)]) -> Vec<&'static str> {
        let mut s = TopoSorter::new();
        for (name, p) in entries {
            s.add(*name, p.clone()).expect("no cycle");
        }
        s.items().copied().collect()
    }

    fn none() -> Placement {
        Placement::default()
    }

    #[test]
    fn topo_01_before_a_tag() {
        let r = sorted(&[
            ("m1", Placement::tag("restApi")),
            ("m4", none().before("restApi")),
        ]);
        assert_eq!(r, ["m4", "m1"]);
    }

    #[test]
    fn topo_02_between_two_tags() {
        let r = sorted(&[
            ("m2", Placement::tag("parseToken")),
            ("m3", Placement::tag("checkRole")),
            ("m5", none().after("parseToken").before("checkRole")),
        ]);
        assert_eq!(r, ["m2", "m5", "m3"]);
    }

    #[test]
    fn topo_03_mixed_constraints() {
        let r = sorted(&[
            ("a", Placement::tag("A")),
            ("b", Placement::tag("B")),
            ("c", none().before("A")),
            ("d", none().after("B")),
            ("e", none()),
        ]);
        assert_eq!(r, ["b", "c", "a", "d", "e"]);
    }

    #[test]
    fn topo_04_groups_with_several_members() {
        let r = sorted(&[
            ("a1", Placement::tag("A")),
            ("x", none()),
            ("a2", Placement::tag("A")),
            ("y", none().after("A")),
            ("z", none().before("A")),
        ]);
        assert_eq!(r, ["x", "z", "a1", "a2", "y"]);
    }

    #[test]
    fn topo_05_06_constraints_bind_to_groups_registered_later() {
        let r = sorted(&[
            ("x", none().before("later")),
            ("y", none()),
            ("later1", Placement::tag("later")),
        ]);
        assert_eq!(r, ["x", "y", "later1"]);
        let r = sorted(&[
            ("x", none().after("later")),
            ("y", none()),
            ("later1", Placement::tag("later")),
        ]);
        assert_eq!(r, ["y", "later1", "x"]);
    }

    #[test]
    fn topo_07_a_name_that_is_no_group_imposes_nothing() {
        let r = sorted(&[("a", none()), ("b", none().before("a")), ("c", none())]);
        assert_eq!(r, ["a", "b", "c"]);
    }

    #[test]
    fn topo_08_a_cycle_is_refused_and_later_additions_still_work() {
        let mut s = TopoSorter::new();
        s.add("a", Placement::tag("a").before("b"))
            .expect("first is fine");
        assert_eq!(
            s.add("b", Placement::tag("b").before("a")),
            Err(SortError::Cycle("b".into()))
        );
        assert_eq!(
            s.add("b", Placement::tag("b").before("a"))
                .map_err(|e| e.to_string()),
            Err("item added into group b created a dependencies error".into())
        );
        s.add("x", Placement::tag("x"))
            .expect("sorter is not poisoned");
        assert_eq!(s.items().copied().collect::<Vec<_>>(), ["a", "x"]);
    }

    #[test]
    fn topo_09_a_node_cannot_come_before_itself() {
        let mut s = TopoSorter::new();
        let err = s
            .add("y", Placement::tag("y").before("y"))
            .expect_err("self");
        assert_eq!(err.to_string(), "Item cannot come before itself: y");
        assert!(s.is_empty());
    }

    #[test]
    fn topo_10_the_app_chain_builtins() {
        let r = sorted(&[
            ("generateReqId", Placement::tag("generateReqId")),
            ("audit", Placement::tag("audit").after("generateReqId")),
            ("logger", Placement::tag("logger")),
            ("cors", Placement::tag("cors").after("bodyParser")),
            ("bodyParser", Placement::tag("bodyParser").after("logger")),
            ("bearer", none()),
            ("i18n", Placement::tag("i18n").before("cors")),
            ("dataWrapping", Placement::tag("dataWrapping").after("cors")),
            (
                "dataSource",
                Placement::tag("dataSource").after("dataWrapping"),
            ),
            (
                "extractClientIp",
                Placement::tag("extractClientIp").before("cors"),
            ),
            (
                "errorHandler",
                Placement::tag("errorHandler").after("i18n").before("cors"),
            ),
        ]);
        assert_eq!(
            r,
            [
                "generateReqId",
                "audit",
                "logger",
                "bodyParser",
                "bearer",
                "i18n",
                "extractClientIp",
                "errorHandler",
                "cors",
                "dataWrapping",
                "dataSource"
            ]
        );
    }

    #[test]
    fn topo_11_the_resource_manager_chain() {
        let r = sorted(&[
            ("acl", Placement::group("acl").after("auth")),
            ("R1", Placement::tag("default")),
            ("R2", Placement::tag("default")),
            ("auth", Placement::tag("auth").before("default")),
            (
                "csrf",
                Placement::tag("csrf").after("auth").before("default"),
            ),
            (
                "validate-filter-params",
                Placement::tag("validate-filter-params").before("auth"),
            ),
            (
                "parseVariables",
                Placement::group("parseVariables").after("acl"),
            ),
            (
                "dataTemplate",
                Placement::group("dataTemplate").after("acl"),
            ),
            ("D1", Placement::tag("default")),
        ]);
        assert_eq!(
            r,
            [
                "validate-filter-params",
                "auth",
                "acl",
                "csrf",
                "R1",
                "R2",
                "parseVariables",
                "dataTemplate",
                "D1"
            ]
        );
    }

    #[test]
    fn topo_12_13_the_acl_inner_chain() {
        let r = sorted(&[
            (
                "allow-manager",
                Placement::tag("allow-manager").before("core"),
            ),
            ("core", Placement::tag("core")),
            ("U", Placement::group("prep")),
        ]);
        assert_eq!(r, ["allow-manager", "core", "U"]);
        let r = sorted(&[
            (
                "allow-manager",
                Placement::tag("allow-manager").before("core"),
            ),
            ("core", Placement::tag("core")),
            ("U", Placement::group("prep")),
            ("C", Placement::group("prep").before("core")),
            ("A", Placement::group("after").after("core")),
        ]);
        assert_eq!(r, ["allow-manager", "U", "C", "core", "A"]);
    }
}
