//! Hiding passwords in connection URLs before they reach a log or a `Debug` output.

fn is_password(name: &str) -> bool {
    name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("pass")
}

/// `name=value` pairs separated by `separator`, with password values replaced by `***`.
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

#[cfg(test)]
mod tests {
    use super::redact_url;

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
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
