//! The catalogue: one Fluent bundle per locale, shared by every request, that plugins add
//! messages to.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::RwLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use fluent_syntax::ast::Entry;
use manifold_core::Error;
use unic_langid::LanguageIdentifier;

use super::built_in::CATALOGUES;
use super::error::I18nError;
use super::negotiate::{DEFAULT_LOCALE, candidates, parse_locale};

/// Every locale's messages: the built-in ones and those plugins add. Cheap to share
/// (`Arc<I18n>`); look-ups take a read lock, additions a write lock.
pub struct I18n {
    locales: RwLock<Vec<Locale>>,
}

/// One locale's bundle, and the ids it defines (messages and terms share one namespace
/// in a bundle, which only reports a clash after adding the rest).
struct Locale {
    tag: LanguageIdentifier,
    bundle: FluentBundle<FluentResource>,
    defined: HashSet<String>,
}

/// The default locale's place in `locales`: it is added first.
const FALLBACK: usize = 0;

impl I18n {
    /// The built-in catalogues (`en-US`, `zh-CN`, `fr-FR`). An error is a bug in
    /// `server/locales`, which the unit tests catch.
    pub fn built_in() -> Result<Self, I18nError> {
        let i18n = I18n {
            locales: RwLock::new(Vec::new()),
        };
        debug_assert_eq!(CATALOGUES[FALLBACK].0, DEFAULT_LOCALE);
        for (locale, source) in CATALOGUES {
            i18n.add_messages(locale, source)?;
        }
        Ok(i18n)
    }

    /// Adds the messages of the FTL `source` to `locale`'s catalogue (made if it has none
    /// yet). All or nothing: a syntax error, or an id the locale already defines, adds
    /// none of them.
    pub fn add_messages(&self, locale: &str, source: &str) -> Result<(), I18nError> {
        let tag: LanguageIdentifier = locale.trim().parse().map_err(|_| I18nError::BadLocale {
            locale: locale.to_owned(),
        })?;
        let locale = tag.to_string();
        let resource = FluentResource::try_new(source.to_owned()).map_err(|(_, errors)| {
            let (line, detail) = errors.first().map_or((1, String::new()), |e| {
                (line_of(source, e.pos.start), e.to_string())
            });
            I18nError::Syntax {
                locale: locale.clone(),
                line,
                detail,
            }
        })?;
        let mut ids = HashSet::new();
        for entry in resource.entries() {
            let id = match entry {
                Entry::Message(m) => m.id.name,
                Entry::Term(t) => t.id.name,
                _ => continue,
            };
            if !ids.insert(id.to_owned()) {
                return Err(duplicate(&locale, id));
            }
        }
        let mut locales = self.locales.write().unwrap_or_else(|e| e.into_inner());
        let index = match locales.iter().position(|l| l.tag == tag) {
            Some(index) => index,
            None => {
                let mut bundle = FluentBundle::new_concurrent(vec![tag.clone()]);
                // Isolation marks (U+2068/U+2069) around arguments help right-to-left
                // display, but would show up as stray characters in JSON messages.
                bundle.set_use_isolating(false);
                locales.push(Locale {
                    tag,
                    bundle,
                    defined: HashSet::new(),
                });
                locales.len() - 1
            }
        };
        let target = &mut locales[index];
        if let Some(taken) = ids.iter().find(|id| target.defined.contains(*id)) {
            return Err(duplicate(&locale, taken));
        }
        // Checked above, so the bundle finds no clash.
        target
            .bundle
            .add_resource(resource)
            .map_err(|_| duplicate(&locale, "a message"))?;
        target.defined.extend(ids);
        Ok(())
    }

    /// The locales that have a catalogue, the default first.
    pub fn locales(&self) -> Vec<String> {
        let locales = self.locales.read().unwrap_or_else(|e| e.into_inner());
        locales.iter().map(|l| l.tag.to_string()).collect()
    }

    /// Message `id` with `args`, in the best locale for `requested` (a raw `X-Locale`
    /// value; see [`super::requested_locale`]) that has it: the locale, then others of its
    /// language, then `en-US`. `None` when none has it or it cannot be formatted (an
    /// argument missing). For a plugin's own answers.
    pub fn translate(
        &self,
        requested: Option<&str>,
        id: &str,
        args: &[(&str, String)],
    ) -> Option<String> {
        let locales = self.locales.read().unwrap_or_else(|e| e.into_inner());
        candidates_for(&locales, requested)
            .into_iter()
            .find_map(|i| format(&locales[i].bundle, id, args))
    }

    /// The message to answer `error` with for a client asking for `requested`: the
    /// translation of the error's message id into the best locale for it that is not the
    /// default; else the error's own (English) message.
    pub fn error_message<'e>(&self, requested: Option<&str>, error: &'e Error) -> Cow<'e, str> {
        // No id, or no locale asked for: English, without taking the lock.
        let (Some(message), Some(requested)) = (error.message_ref(), requested) else {
            return Cow::Borrowed(error.message());
        };
        let locales = self.locales.read().unwrap_or_else(|e| e.into_inner());
        let translated = candidates_for(&locales, Some(requested))
            .into_iter()
            // The code's English message is the source of truth for the default locale.
            .take_while(|&i| i != FALLBACK)
            .find_map(|i| format(&locales[i].bundle, message.id(), message.args()));
        match translated {
            Some(text) => Cow::Owned(format!("{}{text}", message.prefix())),
            None => Cow::Borrowed(error.message()),
        }
    }
}

/// [`candidates`] for a raw requested locale.
fn candidates_for(locales: &[Locale], requested: Option<&str>) -> Vec<usize> {
    let tags: Vec<LanguageIdentifier> = locales.iter().map(|l| l.tag.clone()).collect();
    let requested = requested.and_then(parse_locale);
    candidates(requested.as_ref(), &tags, FALLBACK)
}

/// Message `id` of `bundle` with `args`; `None` when the bundle lacks it or formatting
/// it reported an error, so that the caller falls back rather than sending `{$path}`.
fn format(
    bundle: &FluentBundle<FluentResource>,
    id: &str,
    args: &[(&str, String)],
) -> Option<String> {
    let pattern = bundle.get_message(id)?.value()?;
    let mut fluent_args = FluentArgs::with_capacity(args.len());
    for (name, value) in args {
        fluent_args.set(*name, argument(value));
    }
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
    errors.is_empty().then(|| text.into_owned())
}

/// An argument as Fluent sees it. Plural variants (`[one]`) need a number, so a small
/// integer written the canonical way becomes one; anything else (`007`, `1.50`, an id
/// too long for an `f64`) stays the text it was, printed exactly as sent.
fn argument(value: &str) -> FluentValue<'_> {
    match value.parse::<i32>() {
        Ok(n) if n.to_string() == value => FluentValue::from(n),
        _ => FluentValue::from(value),
    }
}

/// The line, counted from 1, that a parser error at byte `at` is about. The parser points
/// at where it expected more (often the start of the next line, or the end of the
/// source); the line meant is that of the last text before it.
fn line_of(source: &str, at: usize) -> usize {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let (head, tail) = source.split_at(at);
    let anchor = match tail.chars().next() {
        Some(c) if !c.is_whitespace() => head.len(),
        _ => head.trim_end().len(),
    };
    source[..anchor].matches('\n').count() + 1
}

fn duplicate(locale: &str, id: &str) -> I18nError {
    I18nError::Duplicate {
        locale: locale.to_owned(),
        id: id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i18n() -> I18n {
        I18n::built_in().expect("the built-in catalogues load")
    }

    fn no_permission() -> Error {
        Error::forbidden("No permissions").with_message_id("acl-no-permission", Vec::new())
    }

    #[test]
    fn errors_with_an_id_are_translated_and_others_stay_english() {
        let i18n = i18n();
        let e = no_permission();
        assert_eq!(i18n.error_message(Some("zh-CN"), &e), "没有权限");
        assert_eq!(
            i18n.error_message(Some("fr-CA"), &e),
            "Vous n’avez pas l’autorisation requise"
        );
        assert_eq!(i18n.error_message(Some("en-US"), &e), "No permissions");
        assert_eq!(i18n.error_message(Some("de-DE"), &e), "No permissions");
        assert_eq!(i18n.error_message(None, &e), "No permissions");
        let plain = Error::forbidden("host not allowed");
        assert_eq!(
            i18n.error_message(Some("zh-CN"), &plain),
            "host not allowed"
        );
    }

    #[test]
    fn contexts_stay_in_front_of_the_translation() {
        let e = Error::bad_request("Unknown date operator \"$dateFoo\"")
            .with_message_id(
                "filter-unknown-date-operator",
                vec![("operator", "\"$dateFoo\"".into())],
            )
            .context("filter.createdAt");
        assert_eq!(
            i18n().error_message(Some("zh-CN"), &e),
            "filter.createdAt: 未知的日期运算符 \"$dateFoo\""
        );
    }

    #[test]
    fn an_id_no_locale_has_or_a_missing_argument_keeps_the_english_message() {
        let i18n = i18n();
        let unknown =
            Error::bad_request("plugin says no").with_message_id("no-such-id", Vec::new());
        assert_eq!(
            i18n.error_message(Some("fr-FR"), &unknown),
            "plugin says no"
        );
        let short = Error::not_found("data source x does not exist")
            .with_message_id("data-source-not-found", Vec::new());
        assert_eq!(
            i18n.error_message(Some("fr-FR"), &short),
            "data source x does not exist"
        );
    }

    #[test]
    fn added_messages_extend_a_locale_or_make_one() {
        let i18n = i18n();
        i18n.add_messages(
            "fr-FR",
            "greet-limit = Pas plus de { $limit } salutations\n",
        )
        .expect("adds");
        i18n.add_messages("de-DE", "greet-limit = Höchstens { $limit } Grüße\n")
            .expect("adds");
        assert_eq!(i18n.locales(), ["en-US", "zh-CN", "fr-FR", "de-DE"]);
        let args = [("limit", "3".to_owned())];
        assert_eq!(
            i18n.translate(Some("fr"), "greet-limit", &args).as_deref(),
            Some("Pas plus de 3 salutations")
        );
        assert_eq!(
            i18n.translate(Some("de-AT"), "greet-limit", &args)
                .as_deref(),
            Some("Höchstens 3 Grüße")
        );
        // No locale has it: none.
        assert_eq!(i18n.translate(Some("de"), "greet-nothing", &args), None);
        // Only in other locales: not in English either, so none.
        assert_eq!(i18n.translate(Some("ja"), "greet-limit", &args), None);
    }

    #[test]
    fn bad_sources_add_nothing_and_say_where() {
        let i18n = i18n();
        let e = i18n
            .add_messages("fr-FR", "ok = fine\n\nbroken = { $x\n")
            .expect_err("does not parse");
        assert!(
            matches!(&e, I18nError::Syntax { locale, line: 3, .. } if locale == "fr-FR"),
            "{e}"
        );
        assert_eq!(
            i18n.translate(Some("fr-FR"), "ok", &[]),
            None,
            "nothing added"
        );

        let e = i18n
            .add_messages("zh-CN", "mine = 我的\nacl-no-permission = 无权\n")
            .expect_err("a built-in id");
        assert_eq!(
            e.to_string(),
            "messages for zh-CN: acl-no-permission is already defined"
        );
        assert_eq!(
            i18n.translate(Some("zh-CN"), "mine", &[]),
            None,
            "nothing added"
        );

        let e = i18n
            .add_messages("zh-CN", "twice = 一\ntwice = 二\n")
            .expect_err("twice in one source");
        assert!(matches!(e, I18nError::Duplicate { .. }), "{e}");

        let e = i18n
            .add_messages("not a tag", "x = y\n")
            .expect_err("bad locale");
        assert!(matches!(e, I18nError::BadLocale { .. }), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_line_of_the_broken_text() {
        let source = "a = x\nb = { $y\n\n\nc = z\n";
        assert_eq!(line_of(source, source.find("c =").unwrap_or(0)), 5);
        assert_eq!(line_of(source, source.find("\n\n").unwrap_or(0) + 1), 2);
        assert_eq!(line_of(source, source.len()), 5);
        assert_eq!(line_of("é = { \n", 1), 1);
        assert_eq!(line_of("", 0), 1);
    }

    #[test]
    fn arguments_keep_their_text_unless_they_are_plain_integers() {
        assert!(matches!(argument("3"), FluentValue::Number(_)));
        assert!(matches!(argument("-12"), FluentValue::Number(_)));
        for text in ["007", "1.50", "12345678901234567890", "+3", " 3", "abc"] {
            assert!(matches!(argument(text), FluentValue::String(_)), "{text}");
        }
    }
}
