//! The user population: a generated range (`alice{0..999}@example.com`) or a SIPp-style CSV
//! injection file (`SEQUENTIAL` first line, then `user;domain;password` rows).

use anyhow::{bail, Context, Result};

/// One user agent's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub domain: String,
    pub password: String,
}

/// Expands `prefix{a..b}suffix@domain`; `{n}` and `{user}` in the password template are
/// replaced by the number and the user name.
pub fn range(pattern: &str, password_template: &str) -> Result<Vec<User>> {
    let (user_part, domain) = pattern
        .rsplit_once('@')
        .context("--users: expected name{a..b}@domain")?;
    if domain.is_empty() {
        bail!("--users: empty domain in {pattern:?}");
    }
    let (numbers, prefix, suffix) = match (user_part.find('{'), user_part.find('}')) {
        (Some(open), Some(close)) if open < close => {
            let inner = &user_part[open + 1..close];
            let (a, b) = inner
                .split_once("..")
                .with_context(|| format!("--users: expected {{a..b}} in {pattern:?}"))?;
            let a: u64 = a
                .trim()
                .parse()
                .with_context(|| format!("--users: bad range start {a:?}"))?;
            let b: u64 = b
                .trim()
                .parse()
                .with_context(|| format!("--users: bad range end {b:?}"))?;
            if b < a {
                bail!("--users: empty range {a}..{b}");
            }
            if b - a >= 50_000_000 {
                bail!("--users: at most 50 million users");
            }
            (a..=b, &user_part[..open], &user_part[close + 1..])
        }
        (None, None) => (0..=0, user_part, ""),
        _ => bail!("--users: unbalanced braces in {pattern:?}"),
    };
    let single = !user_part.contains('{');
    Ok(numbers
        .map(|n| {
            let name = if single {
                prefix.to_owned()
            } else {
                format!("{prefix}{n}{suffix}")
            };
            let password = password_template
                .replace("{n}", &n.to_string())
                .replace("{user}", &name);
            User {
                name,
                domain: domain.to_owned(),
                password,
            }
        })
        .collect())
}

/// Parses a SIPp injection file: first line `SEQUENTIAL` (or `RANDOM`, treated alike), then
/// `user;domain;password` per line. Errors name the file and line.
pub fn csv(text: &str, file: &str) -> Result<Vec<User>> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if matches!(first.trim(), "SEQUENTIAL" | "RANDOM" | "USER") => {}
        Some((_, first)) => bail!("{file}:1: expected SEQUENTIAL or RANDOM, found {first:?}"),
        None => bail!("{file}: empty file"),
    }
    let mut users = Vec::new();
    for (i, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(';').collect();
        match fields.as_slice() {
            [user, domain, password, ..] if !user.is_empty() && !domain.is_empty() => {
                users.push(User {
                    name: (*user).to_owned(),
                    domain: (*domain).to_owned(),
                    password: (*password).to_owned(),
                })
            }
            _ => bail!(
                "{file}:{}: expected user;domain;password, found {line:?}",
                i + 1
            ),
        }
    }
    if users.is_empty() {
        bail!("{file}: no users");
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let u = range("alice{0..2}x@example.com", "pw-{user}-{n}").unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(
            u[2],
            User {
                name: "alice2x".into(),
                domain: "example.com".into(),
                password: "pw-alice2x-2".into()
            }
        );
        let one = range("bob@example.com", "secret").unwrap();
        assert_eq!(
            one,
            vec![User {
                name: "bob".into(),
                domain: "example.com".into(),
                password: "secret".into()
            }]
        );
        for bad in ["nodomain", "a{1..x}@d", "a{5..1}@d", "a{1..2@d", "a@"] {
            assert!(range(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_files() {
        let u = csv(
            "SEQUENTIAL\nalice;example.com;pw1\r\n\n# c\nbob;example.com;pw;extra\n",
            "u.csv",
        )
        .unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].password, "pw");
        let e = csv("SEQUENTIAL\nalice;example.com;pw\nbroken-line\n", "u.csv")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "u.csv:3: expected user;domain;password, found \"broken-line\""
        );
        assert!(csv("alice;b;c\n", "u.csv")
            .unwrap_err()
            .to_string()
            .starts_with("u.csv:1:"));
        assert!(csv("SEQUENTIAL\n", "u.csv").is_err());
    }
}
