//! Output helpers shaped like Nomad's CLI: aligned key/value blocks, tables, times.

/// Formats rows as Nomad does (`columnize`): columns separated by two spaces, the last
/// column not padded. Each row is a list of cells.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A `Key = Value` block with the `=` signs aligned.
pub(crate) fn kv(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(&format!("{k:<width$} = {v}\n"));
    }
    out
}

/// The first 8 characters of an ID, as Nomad shows IDs unless `-verbose`.
pub(crate) fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix nanoseconds as RFC 3339 in UTC, seconds precision (`2024-05-01T10:00:00Z`).
pub(crate) fn rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Unix nanoseconds as Nomad's relative form (`5s ago`, `3m12s ago`, `2h4m ago`).
pub(crate) fn ago(nanos: i64) -> String {
    if nanos <= 0 {
        return "<none>".into();
    }
    let now = nomad_server::now_nanos();
    let secs = (now - nanos).max(0) / 1_000_000_000;
    if secs < 60 {
        format!("{secs}s ago")
    } else if secs < 3600 {
        format!("{}m{}s ago", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{}m ago", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}d{}h ago", secs / 86_400, (secs % 86_400) / 3600)
    }
}

/// The local time now for monitor lines (`2024-05-01T10:00:00Z`).
pub(crate) fn now() -> String {
    rfc3339(nomad_server::now_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&[
            vec!["ID".into(), "Type".into(), "Status".into()],
            vec!["web".into(), "service".into(), "running".into()],
        ]);
        assert_eq!(t, "ID   Type     Status\nweb  service  running\n");
    }

    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_714_557_600 * 1_000_000_000),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(rfc3339(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn kv_aligns_equals() {
        assert_eq!(
            kv(&[("ID", "a".into()), ("Status", "b".into())]),
            "ID     = a\nStatus = b\n"
        );
    }
}
