//! Sluice stage kinds: `collect` (through connectors), `clean` (ordered cleaning
//! operations), `feature-extract` (declarative transforms or SQL on an embedded DataFusion)
//! and `split`. Each kind implements [`sluice_core::StageKind`] (config side) and
//! builds a [`sluice_core::Stage`] (runtime side).

pub mod clean;
pub mod collect;
pub mod feature;
mod incremental;
mod nan;
pub mod reference;
pub mod split;
pub mod sql;

use std::sync::Arc;

use sluice_core::Registry;

/// The registry of every built-in stage kind and connector.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_kind(Arc::new(collect::CollectKind));
    r.add_kind(Arc::new(feature::FeatureKind));
    r.add_kind(Arc::new(clean::CleanKind));
    r.add_kind(Arc::new(split::SplitKind));
    for c in sluice_connectors::builtin() {
        r.add_connector(Arc::from(c));
    }
    r
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn registry_names_are_unique_and_documented() {
        let r = super::registry();
        let mut seen = HashSet::new();
        for k in r.kinds() {
            assert!(seen.insert(k.name().to_string()), "duplicate kind {}", k.name());
            assert!(!k.doc().is_empty(), "kind {} has no doc", k.name());
        }
        for c in r.connectors() {
            assert!(seen.insert(format!("connector:{}", c.name())), "duplicate connector {}", c.name());
            assert!(!c.doc().is_empty(), "connector {} has no doc", c.name());
            for key in c.keys() {
                assert!(!key.doc.is_empty(), "key {}.{} has no doc", c.name(), key.name);
            }
        }
    }
}
