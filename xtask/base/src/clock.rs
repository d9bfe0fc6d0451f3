//! UTC timestamps without a date library: RFC 3339 for reports, a compact
//! form for folder names.
use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-28T03:40:05Z`.
pub fn now_rfc3339() -> String {
    let (date, (h, m, s)) = civil(now_secs());
    format!("{date}T{h:02}:{m:02}:{s:02}Z")
}

/// `20261128T034005Z`, sortable and safe in a path.
pub fn now_compact() -> String {
    now_rfc3339().replace(['-', ':'], "")
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Splits Unix seconds into a `YYYY-MM-DD` date and a time of day, using the
/// days-from-civil algorithm of the proleptic Gregorian calendar.
fn civil(secs: i64) -> (String, (i64, i64, i64)) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), (rem / 3600, rem % 3600 / 60, rem % 60))
}

#[cfg(test)]
mod tests {
    #[test]
    fn converts_known_instants() {
        assert_eq!(super::civil(0).0, "1970-01-01");
        assert_eq!(super::civil(1_795_750_805), ("2026-11-27".to_string(), (3, 40, 5)));
        assert_eq!(super::civil(951_782_400).0, "2000-02-29");
    }
}
