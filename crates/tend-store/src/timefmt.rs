//! Times written out: ISO 8601 in UTC with milliseconds and `Z`, hand-rolled because the CSV export
//! calls it per row; the tests check it against jiff. Reading times is `tend_core::time::parse_time`.

use tend_core::time::Timestamp;

/// `2026-11-23T11:54:26.123Z`. Hand-rolled (days-from-civil) because CSV export calls it per row.
pub fn iso(t: Timestamp) -> String {
    let mut s = String::with_capacity(24);
    write_iso(&mut s, t);
    s
}

pub fn write_iso(out: &mut String, t: Timestamp) {
    use std::fmt::Write;
    let ms = t.as_millis();
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, frac) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z");
}

/// Howard Hinnant's algorithm: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::time::parse_time;

    #[test]
    fn iso_agrees_with_jiff_and_round_trips_through_the_parser() {
        let mut ms = -86_400_000 * 366 * 3;
        while ms < 4_102_444_800_000 {
            let s = iso(Timestamp::from_millis(ms));
            let want =
                jiff::Timestamp::from_millisecond(ms).unwrap().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(s, want);
            assert_eq!(parse_time(&s, Timestamp(0)).unwrap().as_millis(), ms, "{s}");
            ms += 7_777_777_777 + 123;
        }
        assert_eq!(iso(Timestamp::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
    }
}
