//! Validates `lock`: an absolute slot directory, a slot count in 1..=1024, and the wait timeout.

use super::{duration, int};
use crate::plan::diag::{Code, Collector};
use crate::plan::model::Lock;
use crate::plan::raw::{self, Spanned};

pub fn validate(raw: &Spanned<raw::Lock>, cx: &mut Collector) -> Lock {
    let def = Lock::default();
    let dir = match &raw.dir {
        Some(d) if d.starts_with('/') => d.value.clone(),
        Some(d) => {
            cx.err(
                Code::BadPath,
                d.span.clone(),
                format!("lock dir `{}` is not absolute", d.value),
                "relative path",
                "use the absolute hostPath mount, e.g. `/mnt/host-backup-locks`",
            );
            def.dir.clone()
        }
        None => def.dir.clone(),
    };
    Lock {
        enabled: raw.enabled.as_ref().map_or(def.enabled, |e| e.value),
        dir,
        slots: int(cx, &raw.slots, "slots", 1, 1024, Code::OutOfRange).map(|s| s as u32),
        timeout: duration(cx, &raw.timeout, "timeout", def.timeout),
    }
}
