//! A label set as a list holds it: sorted `(key, value)` pairs in one exact-size shared slice, each string shared.
//!
//! A list of 100,000 snapshots repeats the same few label keys and, per night and per PVC, the same values, and
//! often the same whole sets (the snapshots of one PVC name and night across namespaces). As
//! `BTreeMap<String, String>`s they cost a tree node and two allocations per label per object (about 1 KB per
//! snapshot); as a `LabelSet` that the list interned with its strings (see `cluster::listed`), a snapshot's
//! labels cost one pointer to a slice it shares with every snapshot labelled the same.

use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Labels sorted by key, each key once. Compares equal to a `BTreeMap` with the same entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelSet(Arc<[(Arc<str>, Arc<str>)]>);

impl Default for LabelSet {
    fn default() -> Self {
        LabelSet(Arc::new([]))
    }
}

impl LabelSet {
    /// The labels of `pairs`, in any order; a key given twice keeps its last value.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Arc<str>, Arc<str>)>) -> Self {
        let mut pairs: Vec<_> = pairs.into_iter().collect();
        // Stable, so of equal keys the later one stays later, and is the one kept.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        LabelSet(pairs.into())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The labels in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as owned strings, what a Kubernetes object's metadata holds.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl From<BTreeMap<String, String>> for LabelSet {
    fn from(map: BTreeMap<String, String>) -> Self {
        LabelSet(
            map.into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }
}

impl PartialEq<BTreeMap<String, String>> for LabelSet {
    fn eq(&self, map: &BTreeMap<String, String>) -> bool {
        self.len() == map.len()
            && self
                .iter()
                .zip(map)
                .all(|((k, v), (mk, mv))| k == mk && v == mv)
    }
}

/// As a JSON object, like the map it stands for.
impl Serialize for LabelSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_label_set_reads_and_compares_like_its_map() {
        let m = map(&[("b", "2"), ("a", "1"), ("c", "3")]);
        let set = LabelSet::from(m.clone());
        assert_eq!(set, m);
        assert_eq!(set.get("b"), Some("2"));
        assert_eq!(set.get("d"), None);
        assert_eq!(set.to_map(), m);
        assert_eq!(
            serde_json::to_value(&set).unwrap(),
            serde_json::to_value(&m).unwrap()
        );
        assert_ne!(set, map(&[("a", "1"), ("b", "2")]));
        assert_ne!(set, map(&[("a", "1"), ("b", "2"), ("c", "4")]));
    }

    #[test]
    fn pairs_are_sorted_and_a_repeated_key_keeps_its_last_value() {
        let pair = |k: &str, v: &str| (Arc::from(k), Arc::from(v));
        let set = LabelSet::from_pairs([pair("z", "1"), pair("a", "1"), pair("z", "2")]);
        assert_eq!(set, map(&[("a", "1"), ("z", "2")]));
    }
}
