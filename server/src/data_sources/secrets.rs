//! Keeping secrets in data-source options out of answers, log lines and error messages.
//!
//! A secret can sit in an option of its own (`password`), in a URL's user info
//! (`postgres://u:SECRET@h`), in a URL's query (`?password=SECRET`, `?sslpassword=`,
//! `?authMechanismProperties=AWS_SESSION_TOKEN:…`) or in an ADO.NET connection string
//! (`server=h;Password=SECRET`). Each is shown as `***`. Where a string cannot be read
//! with certainty, the whole string is hidden rather than guessed at.

use percent_encoding::percent_decode_str;
use serde_json::Value as Json;

/// What every hidden secret is shown as.
pub const MASK: &str = "***";

/// Option keys whose values are secrets: stored, used, never returned or logged.
const SECRET_KEYS: &[&str] = &["password", "secret", "token"];

/// Parameter names (lower case, in a URL query or a connection string) whose values are
/// secrets: any name containing one of these. `pwd` is SQL Server's and MySQL's spelling;
/// a MongoDB `authMechanismProperties` value may carry an AWS session token.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authmechanismproperties",
];

fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| lower.contains(s))
}

/// Whether a parameter name names a secret, read as the drivers read it: percent-decoded
/// (`pass%77ord` is `password` to sqlx), `+` as a space, case-insensitive.
fn is_secret_param(raw: &str) -> bool {
    let spaced = raw.replace('+', " ");
    let decoded = percent_decode_str(&spaced).decode_utf8_lossy();
    let lower = decoded.trim().to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| lower.contains(s))
}

/// Options with every secret removed (secret keys) or masked (inside every string).
pub fn mask_secrets(options: &Json) -> Json {
    match options {
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| !is_secret_key(k))
                .map(|(k, v)| (k.clone(), mask_secrets(v)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(mask_secrets).collect()),
        Json::String(s) => Json::String(mask_url(s)),
        other => other.clone(),
    }
}

/// A URL or connection string with each secret in it shown as `***`:
/// `postgres://u:***@h/db?sslmode=require&password=***`, `server=h;user=sa;Password=***`.
/// Any other string is returned unchanged.
pub fn mask_url(text: &str) -> String {
    mask_collecting(text, &mut Vec::new())
}

/// [`mask_url`], also pushing each hidden secret onto `found`.
fn mask_collecting(text: &str, found: &mut Vec<String>) -> String {
    if let Some((scheme, rest)) = text.split_once("://")
        && is_scheme(scheme)
    {
        return format!("{scheme}://{}", mask_after_scheme(rest, found));
    }
    if text.contains('=') {
        return mask_key_values(text, found);
    }
    text.to_owned()
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Masks the user info's password and every secret query parameter.
///
/// The user info ends at the last `@` before the query: that is where MongoDB's parser
/// ends it, and never before where the URL standard (sqlx) does, so a password is masked
/// by either reading; at worst the host is hidden with it.
fn mask_after_scheme(rest: &str, found: &mut Vec<String>) -> String {
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, query) = rest.split_at(query_at);
    let before_query = match before_query.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, password)) => {
                found.push(password.to_owned());
                format!("{user}:{MASK}@{hosts}")
            }
            None => before_query.to_owned(),
        },
        None => before_query.to_owned(),
    };
    let Some(pairs) = query.strip_prefix(['?', '#']) else {
        return before_query;
    };
    let sep = &query[..1];
    format!("{before_query}{sep}{}", mask_query(pairs, found))
}

/// `a=1&password=x;pwd=y` → `a=1&password=***;pwd=***`. Both separators are split on:
/// MongoDB's older strings use `;`.
fn mask_query(query: &str, found: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let (pair, after) = rest.split_at(end);
        match pair.split_once('=') {
            Some((key, value)) if is_secret_param(key) => {
                found.push(value.to_owned());
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(pair),
        }
        let Some(sep) = after.chars().next() else {
            return out;
        };
        out.push(sep);
        rest = &after[sep.len_utf8()..];
    }
}

/// An ADO.NET `key=value;…` string with secret values masked; values are read with the
/// quoting SQL Server drivers use (`'…'`, `"…"` with doubled quotes, `{…}`). A string that
/// does not read as one, yet names a secret, is hidden whole.
fn mask_key_values(text: &str, found: &mut Vec<String>) -> String {
    match mask_ado(text, found) {
        Some(masked) => masked,
        None if is_secret_param(text) => {
            found.push(text.to_owned());
            MASK.to_owned()
        }
        None => text.to_owned(),
    }
}

fn mask_ado(text: &str, found: &mut Vec<String>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let skipped = rest.len() - rest.trim_start_matches([' ', ';']).len();
        out.push_str(&rest[..skipped]);
        rest = &rest[skipped..];
        if rest.is_empty() {
            return Some(out);
        }
        let eq = rest.find('=')?;
        let (key, after_eq) = (&rest[..eq], &rest[eq + 1..]);
        let value_len = ado_value_len(after_eq)?;
        let (value, remainder) = after_eq.split_at(value_len);
        if !(remainder.trim_start().is_empty() || remainder.trim_start().starts_with(';')) {
            return None;
        }
        out.push_str(key);
        out.push('=');
        if is_secret_param(key) {
            found.push(ado_unquote(value));
            out.push_str(MASK);
        } else {
            out.push_str(value);
        }
        rest = remainder;
    }
}

/// A value as the driver reads it: unquoted, doubled quotes undone.
fn ado_unquote(value: &str) -> String {
    let v = value.trim();
    match v.chars().next() {
        Some(q @ ('\'' | '"')) if v.len() >= 2 => {
            let doubled: String = [q, q].iter().collect();
            v[1..v.len() - 1].replace(&doubled, &q.to_string())
        }
        Some('{') if v.len() >= 2 => v[1..v.len() - 1].to_owned(),
        _ => v.to_owned(),
    }
}

/// How many bytes of `text` the value at its start takes, quotes included.
fn ado_value_len(text: &str) -> Option<usize> {
    let lead = text.len() - text.trim_start().len();
    let body = &text[lead..];
    let len = match body.chars().next() {
        Some(quote @ ('\'' | '"')) => {
            let mut i = 1;
            loop {
                let next = body[i..].find(quote)? + i;
                if body[next + 1..].starts_with(quote) {
                    i = next + 2;
                } else {
                    break next + 1;
                }
            }
        }
        Some('{') => body.find('}')? + 1,
        _ => body.find(';').unwrap_or(body.len()),
    };
    Some(lead + len)
}

/// Every secret value in `options`, for scrubbing messages that might quote one (a
/// driver's error about a URL, say).
pub fn secret_values(options: &Json) -> Vec<String> {
    let mut found = Vec::new();
    collect_secrets(options, &mut found);
    found.retain(|s| !s.is_empty() && s != MASK);
    found.sort();
    found.dedup();
    found
}

fn collect_secrets(value: &Json, found: &mut Vec<String>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                match v {
                    Json::String(s) if is_secret_key(k) => found.push(s.clone()),
                    other => collect_secrets(other, found),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| collect_secrets(v, found)),
        Json::String(s) => secrets_in_string(s, found),
        _ => {}
    }
}

/// The secrets [`mask_url`] hides in `text`, raw and percent-decoded (a driver may quote
/// either).
fn secrets_in_string(text: &str, found: &mut Vec<String>) {
    let mut raw = Vec::new();
    mask_collecting(text, &mut raw);
    for secret in raw {
        let spaced = secret.replace('+', " ");
        found.push(percent_decode_str(&spaced).decode_utf8_lossy().into_owned());
        found.push(percent_decode_str(&secret).decode_utf8_lossy().into_owned());
        found.push(secret);
    }
}

/// `message` with every one of `secrets` replaced by `***`.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_owned();
    // Longest first, so a secret that contains another is replaced whole.
    let mut ordered: Vec<&String> = secrets.iter().filter(|s| s.len() >= 3).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in ordered {
        out = out.replace(secret.as_str(), MASK);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_leave() {
        let masked = mask_secrets(&json!({
            "host": "db", "password": "p4ss", "dbPassword": "x", "apiToken": "t",
            "url": "postgres://ro:s3cret@db:5432/erp?sslmode=require",
            "nested": {"password": "y"}
        }));
        let text = masked.to_string();
        for secret in ["p4ss", "s3cret", "\"x\"", "\"t\"", "\"y\""] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert_eq!(
            masked["url"],
            json!("postgres://ro:***@db:5432/erp?sslmode=require")
        );
        assert_eq!(masked["host"], json!("db"));
    }

    #[test]
    fn every_secret_part_of_a_url_is_masked() {
        for (url, shown) in [
            (
                "postgres://postgres@127.0.0.1:5432/db?password=SECRET",
                "postgres://postgres@127.0.0.1:5432/db?password=***",
            ),
            (
                "postgres://u:SECRET@h/db?sslmode=require&sslpassword=SECRET&application_name=x",
                "postgres://u:***@h/db?sslmode=require&sslpassword=***&application_name=x",
            ),
            (
                "postgres://u@h/db?pass%77ord=SECRET",
                "postgres://u@h/db?pass%77ord=***",
            ),
            ("mysql://u@h/db?PWD=SECRET", "mysql://u@h/db?PWD=***"),
            (
                "mongodb://u:SECRET@h1:27017,h2:27018/app?authSource=admin",
                "mongodb://u:***@h1:27017,h2:27018/app?authSource=admin",
            ),
            ("mongodb://u:p@ss:SECRET@h/app", "mongodb://u:***@h/app"),
            (
                "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:SECRET",
                "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
            ),
            (
                "mongodb://h/?proxyPassword=SECRET;tlsCertificateKeyFilePassword=SECRET",
                "mongodb://h/?proxyPassword=***;tlsCertificateKeyFilePassword=***",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
        ] {
            assert_eq!(mask_url(url), shown, "{url}");
        }
    }

    #[test]
    fn connection_strings_mask_their_password_values() {
        for (text, shown) in [
            (
                "server=tcp:db,1433;user=sa;Password=SECRET;encrypt=true",
                "server=tcp:db,1433;user=sa;Password=***;encrypt=true",
            ),
            (
                "Server=db; PWD = 'SEC;RET' ; Database=erp",
                "Server=db; PWD =*** ; Database=erp",
            ),
            (
                "server=db;password=\"a\"\"SECRET;b\";uid=x",
                "server=db;password=***;uid=x",
            ),
            ("server=db;pwd={SEC;RET}", "server=db;pwd=***"),
            ("server=db;password='SECRET", "***"),
            ("plain text", "plain text"),
        ] {
            assert_eq!(mask_url(text), shown, "{text}");
        }
    }

    #[test]
    fn messages_are_scrubbed_of_every_secret() {
        let options = json!({
            "url": "postgres://u:S3cr%40t@h/db?sslpassword=OTHER-SECRET",
            "password": "plain-pw"
        });
        let secrets = secret_values(&options);
        let message = "failed for S3cr@t, S3cr%40t, OTHER-SECRET and plain-pw on h";
        assert_eq!(
            scrub(message, &secrets),
            "failed for ***, ***, *** and *** on h"
        );
    }
}
