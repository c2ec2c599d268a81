//! Plain-text tables and number formatting for human output.

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds for people: `0.4 ms`, `12 ms`, `3.2 s`.
pub fn duration(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// A left-aligned table with a header row; numeric-looking columns align right.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let right: Vec<bool> = (0..cols)
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i)
                        .is_none_or(|c| c == "-" || c.chars().next().is_some_and(|ch| ch.is_ascii_digit()))
                })
        })
        .collect();
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = (usize, &str)>| {
        let mut s = String::from("  ");
        for (i, c) in cells {
            let pad = width[i].saturating_sub(c.chars().count());
            if right[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < cols {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cols {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    out.push_str(&line(&mut header.iter().enumerate().map(|(i, h)| (i, *h))));
    out.push('\n');
    for r in rows {
        out.push_str(&line(&mut r.iter().enumerate().take(cols).map(|(i, c)| (i, c.as_str()))));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_tables() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(541909), "541,909");
        assert_eq!(thousands(1000000), "1,000,000");
        let t =
            table(&["stage", "rows"], &[vec!["orders".into(), "1,200".into()], vec!["x".into(), "7".into()]]);
        assert_eq!(t, "  stage    rows\n  orders  1,200\n  x           7\n");
    }
}
