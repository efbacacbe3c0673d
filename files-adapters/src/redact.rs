//! Hiding secrets in URLs before they reach a log, an error message or a `Debug` output:
//! passwords in connection URLs (`redact_url`), and everything that may be a credential in a
//! URL that is fetched (`redact_url_strict`).

#[cfg(any(feature = "postgres", feature = "redis", feature = "amqp"))]
fn is_password(name: &str) -> bool {
    name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("pass")
}

/// `name=value` pairs separated by `separator`, with password values replaced by `***`.
#[cfg(any(feature = "postgres", feature = "redis", feature = "amqp"))]
fn redact_pairs(pairs: &str, separator: char) -> String {
    pairs
        .split(separator)
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_password(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(&separator.to_string())
}

/// The URL with its password — in the user info, or a `password`/`pass` query parameter —
/// replaced by `***`. libpq's `key=value` form has its `password=` hidden; anything else that
/// does not look like a URL is hidden whole.
#[cfg(any(feature = "postgres", feature = "redis", feature = "amqp"))]
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url
            .split(' ')
            .any(|pair| pair.split_once('=').is_some_and(|(name, _)| is_password(name)))
        {
            redact_pairs(url, ' ')
        } else {
            "***".to_owned()
        };
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_pairs(query, '&')),
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The URL with nothing in it that may be a credential: its user info (name and password) shown
/// as `***@`, its whole query as `?***` and its fragment as `#***`; the scheme, host, port and
/// path are kept. Anything that does not look like a URL (no `scheme://`) is hidden whole.
///
/// The user info is everything before the last `@` ahead of the query: a password holding a `/`
/// (which no URL parser would read as a password) is hidden too, at the price of hiding the host
/// of a URL with an `@` in its path.
#[cfg(any(feature = "jwks", feature = "s3"))]
pub(crate) fn redact_url_strict(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let (before_query, query) = rest.split_at(rest.find(['?', '#']).unwrap_or(rest.len()));
    let mut shown = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((_user_info, host_and_path)) => {
            shown.push_str("***@");
            shown.push_str(host_and_path);
        }
        None => shown.push_str(before_query),
    }
    if query.starts_with('?') {
        shown.push_str("?***");
    }
    if query.contains('#') {
        shown.push_str("#***");
    }
    shown
}

#[cfg(test)]
mod tests {
    #[cfg(any(feature = "postgres", feature = "redis", feature = "amqp"))]
    #[test]
    fn passwords_are_hidden_and_the_rest_kept() {
        for (url, shown) in [
            (
                "postgres://files:s3cret@db:5432/files",
                "postgres://files:***@db:5432/files",
            ),
            ("postgres://u:p@w@db/x", "postgres://u:***@db/x"),
            ("postgres://files@db/files", "postgres://files@db/files"),
            (
                "postgres://db/files?user=files&password=s3cret",
                "postgres://db/files?user=files&password=***",
            ),
            (
                "host=db user=files password=s3cret dbname=files",
                "host=db user=files password=*** dbname=files",
            ),
            ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "amqp://files:s3cret@rabbit:5672/%2f",
                "amqp://files:***@rabbit:5672/%2f",
            ),
            ("amqp://rabbit", "amqp://rabbit"),
            ("s3cret", "***"),
            ("user:s3cret@host", "***"),
        ] {
            assert_eq!(super::redact_url(url), shown, "{url}");
        }
    }

    #[cfg(any(feature = "jwks", feature = "s3"))]
    #[test]
    fn the_strict_form_hides_user_info_query_and_fragment() {
        for (url, shown) in [
            (
                "https://dsts.example/.well-known/jwks.json",
                "https://dsts.example/.well-known/jwks.json",
            ),
            ("https://user:s3cret@dsts:8443/jwks", "https://***@dsts:8443/jwks"),
            ("https://token-only@dsts/jwks", "https://***@dsts/jwks"),
            ("https://u:p@ss@dsts/jwks", "https://***@dsts/jwks"),
            ("https://u:pa/ss@dsts/jwks", "https://***@dsts/jwks"),
            ("https://dsts/jwks?access_token=s3cret&x=1", "https://dsts/jwks?***"),
            (
                "http://user:s3cret@127.0.0.1:9/jwks.json?access_token=s3cret#frag",
                "http://***@127.0.0.1:9/jwks.json?***#***",
            ),
            ("https://dsts/jwks#s3cret", "https://dsts/jwks#***"),
            ("https://dsts/jwks?a@b", "https://dsts/jwks?***"),
            ("https://dsts?s3cret", "https://dsts?***"),
            ("s3cret", "***"),
            ("user:s3cret@dsts/jwks?s3cret", "***"),
        ] {
            let redacted = super::redact_url_strict(url);
            assert_eq!(redacted, shown, "{url}");
            assert!(!redacted.contains("s3cret") && !redacted.contains("pa/ss"), "{url}");
        }
    }
}
