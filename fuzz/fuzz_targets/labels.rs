//! Label values and the retention annotation as read back from the cluster, where anyone with patch rights can
//! write anything: parsing never panics, and what parses prints back to a value that parses the same.
#![no_main]

use backup_ns::labels::{format_date, parse_date};
use backup_ns::vocab::retention::{RetentionPolicy, Tier, TierCounts};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(date) = parse_date(value) {
        assert_eq!(parse_date(&format_date(date)), Some(date), "{value:?}");
    }
    for tier in Tier::ALL {
        let _ = tier.parse_value(value);
        if let Some(date) = parse_date(value) {
            let canonical = tier.value_for(date);
            assert!(
                tier.parse_value(&canonical).is_some(),
                "{tier:?} cannot read its own value {canonical:?}"
            );
        }
    }
    let defaults = TierCounts::default();
    if let Ok(policy) = RetentionPolicy::from_annotation(value, defaults) {
        let written = policy.to_annotation();
        assert_eq!(
            RetentionPolicy::from_annotation(&written, defaults).ok(),
            Some(policy),
            "annotation {value:?} → {written:?} does not read back"
        );
    }
});
