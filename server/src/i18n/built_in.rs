//! The catalogues compiled into the binary, one per built-in locale; the first is the
//! default locale's.

/// `(locale, FTL source)` of every built-in catalogue, `en-US` first.
pub(super) const CATALOGUES: [(&str, &str); 3] = [
    ("en-US", include_str!("../../locales/en-US/manifold.ftl")),
    ("zh-CN", include_str!("../../locales/zh-CN/manifold.ftl")),
    ("fr-FR", include_str!("../../locales/fr-FR/manifold.ftl")),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use fluent_syntax::ast::Entry;
    use fluent_syntax::parser::parse;

    use super::CATALOGUES;
    use crate::i18n::I18n;

    fn ids(source: &str) -> BTreeSet<String> {
        let resource = parse(source).unwrap_or_else(|(_, errors)| panic!("{errors:?}"));
        resource
            .body
            .iter()
            .filter_map(|entry| match entry {
                Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_locale_translates_every_message_of_the_reference() {
        let reference = ids(CATALOGUES[0].1);
        assert!(reference.len() >= 15, "{reference:?}");
        for (locale, source) in &CATALOGUES[1..] {
            assert_eq!(ids(source), reference, "{locale}");
        }
    }

    /// Arguments for every message, as the code passes them.
    const SAMPLE_ARGS: &[(&str, &str)] = &[
        ("seconds", "3"),
        ("key", "warehouse"),
        ("collection", "posts"),
        ("path", "filter.age.$gt"),
        ("expected", "integer"),
        ("got", "\"abc\""),
        ("operator", "\"$foo\""),
        ("supported", "$eq $ne"),
        ("field", "\"agee\""),
        ("kind", "mongodb"),
        ("method", "GET"),
        ("resource", "posts"),
        ("action", "destroy"),
        // A filter is JSON, whose braces the check below would take for a placeholder.
        ("filter", "[]"),
    ];

    #[test]
    fn every_message_formats_cleanly_in_every_locale() {
        let i18n = I18n::built_in().expect("the built-in catalogues load");
        let args: Vec<(&str, String)> = SAMPLE_ARGS
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        for (locale, _) in CATALOGUES {
            for id in ids(CATALOGUES[0].1) {
                let text = i18n
                    .translate(Some(locale), &id, &args)
                    .unwrap_or_else(|| panic!("{locale} {id} does not format"));
                assert!(
                    !text.contains('{') && !text.contains('\u{2068}'),
                    "{locale} {id}: {text}"
                );
            }
        }
    }

    #[test]
    fn every_expected_type_has_its_own_words() {
        let i18n = I18n::built_in().expect("the built-in catalogues load");
        let keys = [
            "string",
            "integer",
            "number",
            "decimal",
            "boolean",
            "date",
            "datetime",
            "datetime-no-tz",
            "time",
            "array",
            "uuid",
            "base64",
        ];
        let mismatch = |locale, key: &str| {
            let args = [
                ("path", "x".to_owned()),
                ("expected", key.to_owned()),
                ("got", "1".to_owned()),
            ];
            i18n.translate(Some(locale), "value-type-mismatch", &args)
                .expect("formats")
        };
        for (locale, _) in CATALOGUES {
            // The default variant shows the key itself.
            let default = mismatch(locale, "no-such-key");
            for key in keys {
                let text = mismatch(locale, key);
                assert_ne!(text, default.replace("no-such-key", key), "{locale} {key}");
            }
        }
    }

    #[test]
    fn plurals_follow_the_locale() {
        let i18n = I18n::built_in().expect("the built-in catalogues load");
        let wait = |locale, seconds: &str| {
            i18n.translate(
                Some(locale),
                "auth-too-many-attempts",
                &[("seconds", seconds.to_owned())],
            )
            .expect("formats")
        };
        assert!(
            wait("fr-FR", "1").ends_with("dans 1 seconde"),
            "{}",
            wait("fr-FR", "1")
        );
        assert!(wait("fr-FR", "30").ends_with("dans 30 secondes"));
        assert!(wait("zh-CN", "30").contains("30 秒后"));
    }
}
