//! Which of the catalogue's locales answers a requested one: the same tag, else the same
//! language (`fr-CA` → `fr-FR`, `zh` → `zh-CN`), else English.

use unic_langid::LanguageIdentifier;

/// The locale every other falls back to, and the language of the messages in the code.
pub const DEFAULT_LOCALE: &str = "en-US";

/// A requested locale as a language tag: the first of a list (`fr-CA,fr;q=0.9` is
/// `fr-CA`), `_` read as `-`, case folded. `None` for anything that is not a tag
/// (empty, `*`, garbage), which is then answered in English.
pub fn parse_locale(requested: &str) -> Option<LanguageIdentifier> {
    let first = requested.split(',').next()?;
    let tag = first.split(';').next()?.trim();
    if tag.is_empty() || tag == "*" {
        return None;
    }
    let id: LanguageIdentifier = tag.parse().ok()?;
    // `und` (an empty language) is what `-` parses to; no catalogue is for it.
    (!id.language.is_empty()).then_some(id)
}

/// The indexes of `available` to look a message up in, best first: exact matches (tags
/// equal, or equal but for variants), then the same language in `available`'s order,
/// then `fallback` (the default locale's index) unless it is already listed.
pub fn candidates(
    requested: Option<&LanguageIdentifier>,
    available: &[LanguageIdentifier],
    fallback: usize,
) -> Vec<usize> {
    let mut order = Vec::with_capacity(3);
    if let Some(requested) = requested {
        let exact = |a: &LanguageIdentifier| {
            a.language == requested.language
                && a.script == requested.script
                && a.region == requested.region
        };
        order.extend((0..available.len()).filter(|&i| exact(&available[i])));
        order.extend(
            (0..available.len())
                .filter(|&i| !exact(&available[i]) && available[i].language == requested.language),
        );
    }
    if !order.contains(&fallback) {
        order.push(fallback);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<LanguageIdentifier> {
        list.iter()
            .map(|t| t.parse().expect("a valid tag"))
            .collect()
    }

    /// The first candidate's tag for `requested`, over the built-in locales.
    fn chosen(requested: &str) -> String {
        let available = tags(&["en-US", "zh-CN", "fr-FR"]);
        let order = candidates(parse_locale(requested).as_ref(), &available, 0);
        available[order[0]].to_string()
    }

    #[test]
    fn exact_tags_win() {
        assert_eq!(chosen("zh-CN"), "zh-CN");
        assert_eq!(chosen("fr-FR"), "fr-FR");
        assert_eq!(chosen("en-US"), "en-US");
    }

    #[test]
    fn case_and_underscores_do_not_matter() {
        assert_eq!(chosen("ZH-cn"), "zh-CN");
        assert_eq!(chosen("zh_CN"), "zh-CN");
        assert_eq!(chosen(" fr-fr "), "fr-FR");
    }

    #[test]
    fn a_language_or_another_region_falls_back_to_the_language() {
        assert_eq!(chosen("zh"), "zh-CN");
        assert_eq!(chosen("fr"), "fr-FR");
        assert_eq!(chosen("fr-CA"), "fr-FR");
        assert_eq!(chosen("fr-BE"), "fr-FR");
        assert_eq!(chosen("zh-TW"), "zh-CN");
        assert_eq!(chosen("en-GB"), "en-US");
    }

    #[test]
    fn lists_take_their_first_entry() {
        assert_eq!(chosen("fr-CA,fr;q=0.9,en;q=0.8"), "fr-FR");
        assert_eq!(chosen("zh-CN;q=1"), "zh-CN");
        // The first entry decides, even if a later one has a catalogue.
        assert_eq!(chosen("de-DE,fr;q=0.5"), "en-US");
    }

    #[test]
    fn unknown_or_malformed_locales_are_english() {
        for requested in [
            "de-DE",
            "ja",
            "",
            "*",
            "-",
            "not a locale",
            "12345",
            "zh-",
            "fr--FR",
            "\u{0}",
        ] {
            assert_eq!(chosen(requested), "en-US", "{requested:?}");
        }
    }

    #[test]
    fn candidates_end_with_the_fallback_once() {
        let available = tags(&["en-US", "zh-CN", "fr-FR", "fr-CA"]);
        let fr_ca = parse_locale("fr-CA");
        assert_eq!(candidates(fr_ca.as_ref(), &available, 0), [3, 2, 0]);
        let en = parse_locale("en");
        assert_eq!(candidates(en.as_ref(), &available, 0), [0]);
        assert_eq!(candidates(None, &available, 0), [0]);
    }
}
