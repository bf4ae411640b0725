//! "Did you mean": the nearest of the names that exist, for a name that does not. One rule for plan keys and
//! cluster objects alike, so a mistyped PVC, workload or snapshot is answered the way a mistyped key is.

/// The best "did you mean" candidate for an unknown name: equal once case, `_` and `-` are ignored, or
/// Jaro-Winkler similarity of at least 0.8.
pub fn suggest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let n = norm(name);
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = if norm(c) == n {
            2.0
        } else {
            strsim::jaro_winkler(&n, &norm(c))
        };
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `"; did you mean `X`?"` when one of `existing` is near `wanted` (and is not `wanted` itself), else `""`: a
/// suffix for a message that says `wanted` does not exist.
pub fn did_you_mean<'c>(wanted: &str, existing: impl IntoIterator<Item = &'c str>) -> String {
    match suggest(wanted, existing.into_iter().filter(|c| *c != wanted)) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_and_far_ones_are_not() {
        let names = ["postgres-data", "mysql-data", "uploads"];
        assert_eq!(
            did_you_mean("postgress-data", names),
            "; did you mean `postgres-data`?"
        );
        assert_eq!(did_you_mean("Uploads", names), "; did you mean `uploads`?");
        assert_eq!(did_you_mean("cache", names), "");
        assert_eq!(did_you_mean("uploads", ["uploads"]), "");
    }
}
