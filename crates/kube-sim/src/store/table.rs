//! One resource's objects, indexed so that no request pays for the size of the store: objects by (namespace,
//! name) in key order, plus an index of label keys and of label key/value pairs. A list with a label selector
//! walks only the objects its most selective requirement names (O(matches + page)), not every object of the
//! resource; counts per namespace give `remainingItemCount` without counting.

use std::collections::btree_set;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::iter::Peekable;
use std::ops::Bound;

use serde_json::Value;

use crate::selectors::{LabelSelector, Requirement};

/// (namespace, name) of an object within its resource; namespace is "" for cluster-scoped objects.
pub type Slot = (String, String);

/// The objects of one resource and their label indexes.
#[derive(Debug, Default)]
pub struct Table {
    objects: BTreeMap<Slot, Value>,
    /// Label key → the objects carrying it (for `key`, `key in (..)` candidates).
    by_key: HashMap<String, BTreeSet<Slot>>,
    /// (label key, value) → the objects carrying exactly that label (for `key=value`).
    by_label: HashMap<(String, String), BTreeSet<Slot>>,
    /// Objects per namespace.
    per_namespace: HashMap<String, usize>,
}

fn labels(obj: &Value) -> impl Iterator<Item = (&String, &str)> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
}

impl Table {
    /// The object at `slot`.
    pub fn get(&self, slot: &Slot) -> Option<&Value> {
        self.objects.get(slot)
    }

    /// Whether an object sits at `slot`.
    pub fn contains(&self, slot: &Slot) -> bool {
        self.objects.contains_key(slot)
    }

    /// Every object in key order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.objects.values()
    }

    /// The slots of one namespace, in key order.
    pub fn slots_in(&self, ns: &str) -> impl Iterator<Item = &Slot> {
        let ns_owned = ns.to_string();
        self.objects
            .range((ns_owned.clone(), String::new())..)
            .map(|(k, _)| k)
            .take_while(move |k| k.0 == ns_owned)
    }

    /// Number of objects, in one namespace or in all.
    pub fn count(&self, ns: Option<&str>) -> usize {
        match ns {
            Some(ns) => self.per_namespace.get(ns).copied().unwrap_or(0),
            None => self.objects.len(),
        }
    }

    /// Store `obj` at `slot`, returning what was there; the indexes follow.
    pub fn insert(&mut self, slot: Slot, obj: Value) -> Option<Value> {
        let old = self.objects.remove(&slot);
        match &old {
            Some(o) => self.unindex(&slot, o),
            None => *self.per_namespace.entry(slot.0.clone()).or_insert(0) += 1,
        }
        for (k, v) in labels(&obj) {
            self.by_key
                .entry(k.clone())
                .or_default()
                .insert(slot.clone());
            self.by_label
                .entry((k.clone(), v.to_string()))
                .or_default()
                .insert(slot.clone());
        }
        self.objects.insert(slot, obj);
        old
    }

    /// Take the object at `slot` out; the indexes follow.
    pub fn remove(&mut self, slot: &Slot) -> Option<Value> {
        let old = self.objects.remove(slot)?;
        self.unindex(slot, &old);
        if let Some(n) = self.per_namespace.get_mut(&slot.0) {
            *n -= 1;
            if *n == 0 {
                self.per_namespace.remove(&slot.0);
            }
        }
        Some(old)
    }

    fn unindex(&mut self, slot: &Slot, obj: &Value) {
        for (k, v) in labels(obj) {
            if let Some(set) = self.by_key.get_mut(k) {
                set.remove(slot);
                if set.is_empty() {
                    self.by_key.remove(k);
                }
            }
            let pair = (k.clone(), v.to_string());
            if let Some(set) = self.by_label.get_mut(&pair) {
                set.remove(slot);
                if set.is_empty() {
                    self.by_label.remove(&pair);
                }
            }
        }
    }

    /// The slots a list should look at, in key order from `from`: for a selector with a requirement that an
    /// object must carry a label (`k`, `k=v`, `k in (..)`), only the objects of the smallest such index entry;
    /// otherwise every object. The caller still checks the whole selector on each.
    pub fn candidates<'a>(
        &'a self,
        selector: Option<&LabelSelector>,
        from: Bound<Slot>,
    ) -> Box<dyn Iterator<Item = &'a Slot> + 'a> {
        let range = (from, Bound::Unbounded);
        let narrowest = selector
            .into_iter()
            .flat_map(|s| s.0.iter())
            .filter_map(|r| self.index_sets(r))
            .min_by_key(|sets| sets.iter().map(|s| s.len()).sum::<usize>());
        match narrowest {
            None => Box::new(self.objects.range(range).map(|(k, _)| k)),
            Some(sets) => Box::new(Merged(
                sets.into_iter()
                    .map(|s| s.range(range.clone()).peekable())
                    .collect(),
            )),
        }
    }

    /// The index sets whose union holds every object satisfying `r`; None when `r` cannot be answered from
    /// the indexes (negative requirements).
    fn index_sets(&self, r: &Requirement) -> Option<Vec<&BTreeSet<Slot>>> {
        static EMPTY: BTreeSet<Slot> = BTreeSet::new();
        match r {
            Requirement::Exists(k) => Some(vec![self.by_key.get(k).unwrap_or(&EMPTY)]),
            Requirement::Equals(k, v) => Some(vec![
                self.by_label.get(&(k.clone(), v.clone())).unwrap_or(&EMPTY),
            ]),
            Requirement::In(k, values) => {
                let distinct: BTreeSet<&String> = values.iter().collect();
                Some(
                    distinct
                        .into_iter()
                        .filter_map(|v| self.by_label.get(&(k.clone(), v.clone())))
                        .collect(),
                )
            }
            Requirement::NotExists(_) | Requirement::NotEquals(..) | Requirement::NotIn(..) => None,
        }
    }
}

/// Several disjoint sorted slot ranges walked as one, in key order (the sets of `k in (a, b)`).
struct Merged<'a>(Vec<Peekable<btree_set::Range<'a, Slot>>>);

impl<'a> Iterator for Merged<'a> {
    type Item = &'a Slot;

    fn next(&mut self) -> Option<&'a Slot> {
        let (_, next) = self
            .0
            .iter_mut()
            .enumerate()
            .filter_map(|(i, it)| it.peek().map(|s| (*s, i)))
            .min()?;
        self.0[next].next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    fn slot(ns: &str, name: &str) -> Slot {
        (ns.to_string(), name.to_string())
    }

    fn names<'a>(it: impl Iterator<Item = &'a Slot>) -> Vec<String> {
        it.map(|s| format!("{}/{}", s.0, s.1)).collect()
    }

    #[test]
    fn a_selector_walks_only_its_narrowest_index_entry_in_key_order() {
        let mut t = Table::default();
        t.insert(slot("a", "1"), obj(json!({"tier": "gold", "app": "db"})));
        t.insert(slot("a", "2"), obj(json!({"tier": "silver", "app": "db"})));
        t.insert(slot("b", "1"), obj(json!({"tier": "gold"})));
        t.insert(slot("b", "2"), obj(json!({"app": "web"})));
        let sel = |s: &str| LabelSelector::parse(s).expect("selector");
        let all = |s: &str| names(t.candidates(Some(&sel(s)), Bound::Unbounded));
        assert_eq!(all("tier=gold"), ["a/1", "b/1"]);
        assert_eq!(all("app=db,tier=silver"), ["a/2"]);
        assert_eq!(all("tier in (silver, gold, gold)"), ["a/1", "a/2", "b/1"]);
        assert_eq!(all("app"), ["a/1", "a/2", "b/2"]);
        assert_eq!(all("tier=bronze"), Vec::<String>::new());
        assert_eq!(
            all("!tier").len(),
            4,
            "a negative requirement walks everything"
        );
        assert_eq!(
            names(t.candidates(Some(&sel("tier")), Bound::Excluded(slot("a", "1")))),
            ["a/2", "b/1"]
        );
    }

    #[test]
    fn relabelling_and_removal_keep_the_indexes_and_counts_exact() {
        let mut t = Table::default();
        t.insert(slot("a", "1"), obj(json!({"tier": "gold"})));
        t.insert(slot("a", "1"), obj(json!({"tier": "silver"})));
        t.insert(slot("b", "1"), obj(json!({"tier": "gold"})));
        let sel = |s: &str| LabelSelector::parse(s).expect("selector");
        assert_eq!(
            names(t.candidates(Some(&sel("tier=gold")), Bound::Unbounded)),
            ["b/1"]
        );
        assert_eq!((t.count(Some("a")), t.count(None)), (1, 2));
        t.remove(&slot("b", "1"));
        assert_eq!(
            names(t.candidates(Some(&sel("tier=gold")), Bound::Unbounded)),
            Vec::<String>::new()
        );
        assert!(
            t.by_label.keys().all(|(_, v)| v == "silver"),
            "no empty index entries stay"
        );
        assert_eq!((t.count(Some("b")), t.count(None)), (0, 1));
        assert_eq!(names(t.slots_in("a")), ["a/1"]);
    }
}
