//! Reading a data source's JSON options: the typed getters every connector shares, each
//! error a 400 naming the option (`options.port: expected an integer from 1 to 65535`).
//! Options stored by forms often hold numbers as text, so integers are read from either.

use serde_json::Value as Json;

use crate::{Error, Result};

/// The 400 for option `name` holding something other than `expected`.
pub fn option_error(name: &str, expected: &str) -> Error {
    Error::bad_request(format!("options.{name}: expected {expected}"))
}

/// Option `name` as a string, if present and not `null`.
pub fn string_option<'a>(options: &'a Json, name: &str) -> Result<Option<&'a str>> {
    match options.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(option_error(name, "a string")),
    }
}

/// Option `name` as a non-empty string, needed by sources of type `kind` when no `url`
/// is given.
pub fn required_string<'a>(options: &'a Json, name: &str, kind: &str) -> Result<&'a str> {
    string_option(options, name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::bad_request(format!(
                "options.{name} is required for {kind} (or give options.url)"
            ))
        })
}

/// Option `name` as an integer from `min` to `max`, given as a number or as digits.
pub fn int_option(options: &Json, name: &str, min: u64, max: u64) -> Result<Option<u64>> {
    let value = match options.get(name) {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::Number(n)) => n.as_u64(),
        Some(Json::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    value
        .filter(|n| (min..=max).contains(n))
        .map(Some)
        .ok_or_else(|| option_error(name, &format!("an integer from {min} to {max}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_getter_names_the_option_it_refuses() {
        let options = json!({"host": "db", "port": "5433", "big": 70000, "odd": true});
        assert_eq!(
            string_option(&options, "host").expect("a string"),
            Some("db")
        );
        assert_eq!(string_option(&options, "none").expect("absent"), None);
        assert_eq!(
            int_option(&options, "port", 1, 65_535).expect("digits"),
            Some(5433)
        );
        let e = int_option(&options, "big", 1, 65_535).expect_err("too big");
        assert_eq!(
            e.message(),
            "options.big: expected an integer from 1 to 65535"
        );
        let e = string_option(&options, "odd").expect_err("not a string");
        assert_eq!(e.message(), "options.odd: expected a string");
        let e = required_string(&options, "database", "postgres").expect_err("missing");
        assert_eq!(
            e.message(),
            "options.database is required for postgres (or give options.url)"
        );
    }
}
