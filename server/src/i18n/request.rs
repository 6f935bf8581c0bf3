//! Where a request names its locale: `X-Locale`, as @nocobase/sdk sends it, else
//! `?locale=`, which NocoBase's server reads next (for links, where no header can be set).

use manifold_core::RequestInfo;

/// The longest locale value read; a longer one is ignored (the answer is English). Real
/// tags are short (`zh-Hant-TW`); this bounds the work a hostile header can cause.
pub const MAX_LOCALE_LEN: usize = 64;

/// The locale `request` asks for, unparsed: the `X-Locale` header when it is set and not
/// empty, else the `locale` query parameter. `None` when neither is set, or the value is
/// too long or not text; never an error, as a bad locale must not fail a request.
pub fn requested_locale(request: &RequestInfo) -> Option<String> {
    let header = request
        .header("x-locale")
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match header {
        Some(value) => (value.len() <= MAX_LOCALE_LEN).then(|| value.to_owned()),
        None => query_locale(&request.query),
    }
}

/// The `locale` parameter of a raw query string, read as every parameter is (`qs`'s
/// rules, percent-decoding included); one that does not parse, or is not one string,
/// names no locale.
fn query_locale(query: &str) -> Option<String> {
    if !query.contains("locale=") {
        return None;
    }
    let params = manifold_core::request::parse_query(query).ok()?;
    let decoded = params.get("locale")?.as_str()?.trim();
    (!decoded.is_empty() && decoded.len() <= MAX_LOCALE_LEN).then(|| decoded.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], query: &str) -> RequestInfo {
        RequestInfo {
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            query: query.to_owned(),
            ..RequestInfo::default()
        }
    }

    #[test]
    fn the_header_comes_first_then_the_query() {
        let both = request(&[("x-locale", "zh-CN")], "locale=fr-FR");
        assert_eq!(requested_locale(&both).as_deref(), Some("zh-CN"));
        let query = request(&[], "filter=%7B%7D&locale=fr-FR");
        assert_eq!(requested_locale(&query).as_deref(), Some("fr-FR"));
        let empty_header = request(&[("x-locale", " ")], "locale=fr%2DFR");
        assert_eq!(requested_locale(&empty_header).as_deref(), Some("fr-FR"));
        assert_eq!(requested_locale(&request(&[], "")), None);
        assert_eq!(requested_locale(&request(&[], "xlocale=fr-FR")), None);
    }

    #[test]
    fn long_or_undecodable_values_are_ignored() {
        let long = "a".repeat(MAX_LOCALE_LEN + 1);
        assert_eq!(requested_locale(&request(&[("x-locale", &long)], "")), None);
        let query = format!("locale={long}");
        assert_eq!(requested_locale(&request(&[], &query)), None);
        assert_eq!(requested_locale(&request(&[], "locale=%FF%FE")), None);
        assert_eq!(requested_locale(&request(&[], "locale=")), None);
    }
}
