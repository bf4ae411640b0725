//! kubectl-style ages (`46h`, `7d17h`, `267d`, `2y45d`): the same rounding rules as the AGE column of
//! `kubectl get`, so `backup-ns list` and kubectl agree on every snapshot.

use chrono::TimeDelta;

/// Formats an elapsed time the way kubectl's AGE column does: precise for young objects, coarse for old ones.
/// A clock skew of up to one second counts as "now"; more than that in the future is `<invalid>`.
pub fn human_age(elapsed: TimeDelta) -> String {
    let seconds = elapsed.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let d = days % 365;
        return if d == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{d}d")
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::human_age;
    use chrono::TimeDelta;

    #[test]
    fn ages_round_like_kubectl_at_every_boundary() {
        let s = TimeDelta::seconds;
        let cases = [
            (s(-5), "<invalid>"),
            (s(-1), "0s"),
            (s(0), "0s"),
            (s(119), "119s"),
            (s(120), "2m"),
            (s(125), "2m5s"),
            (s(599), "9m59s"),
            (s(600), "10m"),
            (s(179 * 60 + 59), "179m"),
            (s(3 * 3600), "3h"),
            (s(3 * 3600 + 5 * 60), "3h5m"),
            (s(8 * 3600), "8h"),
            (s(46 * 3600 + 59 * 60), "46h"),
            (s(48 * 3600), "2d"),
            (s(7 * 86400 + 17 * 3600 + 30 * 60), "7d17h"),
            (s(8 * 86400), "8d"),
            (s(267 * 86400 + 17 * 3600), "267d"),
            (s(730 * 86400), "2y"),
            (s(775 * 86400), "2y45d"),
            (s(8 * 365 * 86400 + 100 * 86400), "8y"),
        ];
        for (elapsed, want) in cases {
            assert_eq!(human_age(elapsed), want, "{elapsed:?}");
        }
    }
}
