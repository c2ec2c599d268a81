//! Keeping the password of a connection string out of every message. The runner redacts
//! `${env.…}` values too, but a message must be safe on its own: a URL can be written
//! literally, and driver errors may quote parts of it.

/// The secret parts of one connection string.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

/// What a secret is replaced by.
const MASK: &str = "***";

impl Redactor {
    /// Secrets of `conn` (a `postgres://` URL or `key=value` string): the password as written,
    /// its percent-decoded form, and the whole string.
    pub(crate) fn new(conn: &str, decoded_password: Option<&[u8]>) -> Self {
        let mut secrets = vec![conn.to_owned()];
        if let Some(p) = url_password(conn) {
            secrets.push(p.to_owned());
        }
        if let Some(p) = keyword_password(conn) {
            secrets.push(p.to_owned());
        }
        if let Some(p) = decoded_password {
            secrets.push(String::from_utf8_lossy(p).into_owned());
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a password inside the whole string does not break its masking.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret masked.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// The password of `scheme://user:password@host/...`, as written.
fn url_password(conn: &str) -> Option<&str> {
    let (_, rest) = conn.split_once("://")?;
    // The user info ends at the last `@` before the path or query.
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@').or_else(|| rest.rsplit_once('@'))?;
    userinfo.split_once(':').map(|(_, p)| p)
}

/// The password of `host=... password=secret ...` (possibly quoted).
fn keyword_password(conn: &str) -> Option<&str> {
    let at = conn.find("password")?;
    let rest = conn[at + "password".len()..].trim_start().strip_prefix('=')?.trim_start();
    match rest.strip_prefix('\'') {
        Some(q) => q.split('\'').next(),
        None => rest.split_whitespace().next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_every_spelling() {
        let r = Redactor::new("postgres://ann:p%40ss@db.example:5432/shop", Some(b"p@ss"));
        let msg = "connect postgres://ann:p%40ss@db.example:5432/shop failed: bad password p@ss (p%40ss)";
        let cleaned = r.clean(msg);
        assert!(!cleaned.contains("p@ss") && !cleaned.contains("p%40ss"), "{cleaned}");
        assert_eq!(cleaned, "connect *** failed: bad password *** (***)");

        let r = Redactor::new("host=db user=ann password='s3 cret' dbname=shop", None);
        assert_eq!(r.clean("auth failed for s3 cret"), "auth failed for ***");
        let r = Redactor::new("postgres://ann:x/y@db/shop", None);
        assert_eq!(r.clean("x/y"), "***");
        let r = Redactor::new("postgres://ann@db/shop", None);
        assert_eq!(r.clean("user ann at db"), "user ann at db");
    }
}
