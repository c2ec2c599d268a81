//! Taking the TLS parameters out of a connection string before tokio-postgres reads it:
//! its `Config` knows only `sslmode=disable|prefer|require` and rejects `sslrootcert`,
//! while libpq (and so every other PostgreSQL tool) also has `verify-ca`, `verify-full` and
//! root certificate files. The scanning mirrors tokio-postgres's own parser, so every other
//! parameter reaches it exactly as written.
//!
//! No error message quotes the string or a value from it: it may hold the password.

/// The TLS parameters of a connection string, and the string without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// The connection string without `sslmode` and `sslrootcert`.
    pub rest: String,
    /// The last `sslmode`, decoded.
    pub sslmode: Option<String>,
    /// The last `sslrootcert`, decoded.
    pub sslrootcert: Option<String>,
}

/// Why a connection string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// It cannot be read (the words say where, never what).
    Malformed(String),
    /// It has a libpq parameter the connector cannot honour.
    Unsupported {
        /// The parameter.
        key: &'static str,
        /// Why it cannot be honoured.
        why: &'static str,
    },
}

/// libpq parameters the connector cannot honour; refusing them beats ignoring them, since
/// each would change who is trusted.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("sslcert", "client certificates are not supported"),
    ("sslkey", "client certificates are not supported"),
    ("sslpassword", "client certificates are not supported"),
    ("sslcrl", "certificate revocation lists are not supported"),
    ("sslcrldir", "certificate revocation lists are not supported"),
];

/// Splits the TLS parameters off `conn` (a `postgres://` URL or a `key=value` string).
pub(crate) fn split(conn: &str) -> Result<TlsParams, SplitError> {
    let url_body = ["postgres://", "postgresql://"].iter().find_map(|p| conn.strip_prefix(p));
    match url_body {
        Some(body) => split_url(conn, conn.len() - body.len()),
        None => split_keywords(conn),
    }
}

impl TlsParams {
    /// Records `key = value` when it is a TLS parameter; `Ok(false)` leaves it to `Config`.
    fn take(&mut self, key: &str, value: String) -> Result<bool, SplitError> {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => match UNSUPPORTED.iter().find(|(k, _)| *k == key) {
                Some(&(key, why)) => return Err(SplitError::Unsupported { key, why }),
                None => return Ok(false),
            },
        }
        Ok(true)
    }
}

/// The URL form: parameters are the `&`-separated `key=value` pairs after the first `?`
/// that follows the user info (which, as in tokio-postgres, ends at the first `@`).
fn split_url(conn: &str, body_start: usize) -> Result<TlsParams, SplitError> {
    let mut out = TlsParams { rest: conn.to_owned(), sslmode: None, sslrootcert: None };
    let host_start = conn[body_start..].find('@').map_or(body_start, |at| body_start + at + 1);
    let Some(q) = conn[host_start..].find('?').map(|q| host_start + q) else { return Ok(out) };
    let mut kept = Vec::new();
    for pair in conn[q + 1..].split('&') {
        let taken = match pair.split_once('=') {
            Some((key, value)) => {
                let key = percent_decode(key, "a parameter name")?;
                let value = percent_decode(value, "a parameter value")?;
                out.take(&key, value)?
            }
            // Left for tokio-postgres to report.
            None => false,
        };
        if !taken {
            kept.push(pair);
        }
    }
    out.rest = conn[..q].to_owned();
    if !kept.is_empty() {
        out.rest.push('?');
        out.rest.push_str(&kept.join("&"));
    }
    Ok(out)
}

/// `%XX` escapes decoded (a `%` without two hex digits stays as it is, as in tokio-postgres).
fn percent_decode(s: &str, what: &str) -> Result<String, SplitError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    // `what` is a key or a description, never a value.
    String::from_utf8(out)
        .map_err(|_| SplitError::Malformed(format!("{what} is not UTF-8 once percent-decoded")))
}

/// The `key=value` form: whitespace-separated pairs, values optionally single-quoted, `\`
/// escaping the next character. Taken pairs are cut out of the string; the rest is kept
/// byte for byte.
fn split_keywords(conn: &str) -> Result<TlsParams, SplitError> {
    let mut out = TlsParams { rest: String::new(), sslmode: None, sslrootcert: None };
    let mut copied = 0;
    let mut it = conn.char_indices().peekable();
    let pos =
        |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| it.peek().map_or(conn.len(), |&(i, _)| i);
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let start = pos(&mut it);
        while it.next_if(|&(_, c)| !c.is_whitespace() && c != '=').is_some() {}
        let key = &conn[start..pos(&mut it)];
        if key.is_empty() {
            // tokio-postgres stops here too.
            break;
        }
        skip_ws(&mut it);
        if it.next_if(|&(_, c)| c == '=').is_none() {
            // The key itself is not quoted: a password written without `password=` would be.
            let at = pos(&mut it);
            return Err(SplitError::Malformed(format!(
                "expected `=` after the parameter name ending at byte {at}"
            )));
        }
        skip_ws(&mut it);
        let mut value = String::new();
        if it.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match it.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(it.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                    None => {
                        let why = format!("the quoted value of the parameter at byte {start} is not closed");
                        return Err(SplitError::Malformed(why));
                    }
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|&(_, c)| !c.is_whitespace()) {
                match c {
                    '\\' => value.extend(it.next().map(|(_, c)| c)),
                    c => value.push(c),
                }
            }
            if value.is_empty() {
                return Err(SplitError::Malformed(format!("the parameter at byte {start} has no value")));
            }
        }
        let end = pos(&mut it);
        if out.take(key, value)? {
            out.rest.push_str(&conn[copied..start]);
            copied = end;
        }
    }
    out.rest.push_str(&conn[copied..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(conn: &str) -> (String, Option<String>, Option<String>) {
        let p = split(conn).unwrap();
        (p.rest, p.sslmode, p.sslrootcert)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept_as_written() {
        assert_eq!(
            ok("postgres://ann:pw@db:5432/shop?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem"),
            ("postgres://ann:pw@db:5432/shop".into(), s("verify-full"), s("/etc/ca x.pem"))
        );
        assert_eq!(
            ok("postgresql://db/shop?connect_timeout=5&sslmode=require&application_name=a%26b"),
            ("postgresql://db/shop?connect_timeout=5&application_name=a%26b".into(), s("require"), None)
        );
        // The last one wins, as in libpq.
        assert_eq!(ok("postgres://db?sslmode=disable&sslmode=prefer").1, s("prefer"));
        // Nothing to take: unchanged, including what tokio-postgres will reject.
        for url in ["postgres://db/shop", "postgres://db/shop?", "postgres://db?bogus", "postgres://db?x=1&"]
        {
            assert_eq!(ok(url), (url.into(), None, None));
        }
        // A `?` in the password is not the start of the parameters.
        assert_eq!(
            ok("postgres://ann:p?ss@db/shop?sslmode=require"),
            ("postgres://ann:p?ss@db/shop".into(), s("require"), None)
        );
        // The result is what tokio-postgres parses.
        let rest = ok("postgres://ann:pw@db:5433/shop?sslrootcert=ca.pem&connect_timeout=3").0;
        let config = ::postgres::Config::from_str(&rest).unwrap();
        assert_eq!(
            (config.get_ports(), config.get_connect_timeout()),
            (&[5433][..], Some(&Duration::from_secs(3)))
        );
    }

    #[test]
    fn keyword_parameters_are_taken_out_and_the_rest_kept_as_written() {
        assert_eq!(
            ok("host=db sslmode=verify-ca password='a b\\'c' sslrootcert = '/etc/my ca.pem' dbname=shop"),
            ("host=db  password='a b\\'c'  dbname=shop".into(), s("verify-ca"), s("/etc/my ca.pem"))
        );
        assert_eq!(ok("sslmode=require"), ("".into(), s("require"), None));
        assert_eq!(ok("host=db sslrootcert=a\\ b.pem"), ("host=db ".into(), None, s("a b.pem")));
        let rest = ok("host=db port=5433 sslmode=verify-full user=ann").0;
        let config = ::postgres::Config::from_str(&rest).unwrap();
        assert_eq!((config.get_ports(), config.get_user()), (&[5433][..], Some("ann")));
    }

    #[test]
    fn malformed_strings_are_reported_without_echoing_them() {
        let secret = "Sup3rS3cret";
        for conn in [
            format!("host=db {secret}"),
            format!("host=db password='{secret}"),
            format!("host=db password={secret} sslmode="),
            format!("postgres://ann:{secret}@db?sslrootcert=%FF%FE"),
        ] {
            let err = format!("{:?}", split(&conn).unwrap_err());
            assert!(err.starts_with("Malformed") && !err.contains(secret) && !err.contains("%FF"), "{err}");
        }
        assert_eq!(
            split("host=db port").unwrap_err(),
            SplitError::Malformed("expected `=` after the parameter name ending at byte 12".into())
        );
        assert_eq!(
            split("postgres://db?sslcert=me.pem").unwrap_err(),
            SplitError::Unsupported { key: "sslcert", why: "client certificates are not supported" }
        );
        assert!(matches!(split("host=db sslcrl=x"), Err(SplitError::Unsupported { key: "sslcrl", .. })));
    }

    use std::str::FromStr;
    use std::time::Duration;
}
