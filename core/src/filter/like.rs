//! `$like` patterns, read once in the core so that every backend (SQL `LIKE`, SQLite
//! `GLOB`, MongoDB regexes, the reference evaluator) gives `%`, `_` and `\` the same meaning.

/// One piece of a `$like` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikePart {
    /// `%`: any run of characters, the empty one included.
    Any,
    /// `_`: exactly one character.
    One,
    /// Characters that match themselves.
    Text(String),
}

/// A parsed SQL `LIKE` pattern.
///
/// `%` and `_` are wildcards and a backslash makes the next character literal, as in
/// PostgreSQL's and MySQL's `LIKE` with their default escape. A trailing backslash is a
/// literal backslash rather than an error, so no pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikePattern {
    parts: Vec<LikePart>,
}

impl LikePattern {
    /// Reads a client's pattern.
    pub fn parse(raw: &str) -> Self {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            let wildcard = match c {
                '%' => LikePart::Any,
                '_' => LikePart::One,
                '\\' => {
                    text.push(chars.next().unwrap_or('\\'));
                    continue;
                }
                other => {
                    text.push(other);
                    continue;
                }
            };
            if !text.is_empty() {
                parts.push(LikePart::Text(std::mem::take(&mut text)));
            }
            // `%%` means the same as `%`; one keeps the matcher linear on such input.
            if !(wildcard == LikePart::Any && parts.last() == Some(&LikePart::Any)) {
                parts.push(wildcard);
            }
        }
        if !text.is_empty() {
            parts.push(LikePart::Text(text));
        }
        Self { parts }
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[LikePart] {
        &self.parts
    }

    /// The pattern with every literal character passed through `escape`, for a backend
    /// whose wildcards are `%` and `_`.
    pub fn render(&self, any: &str, one: &str, escape: impl Fn(&str) -> String) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                LikePart::Any => any.to_owned(),
                LikePart::One => one.to_owned(),
                LikePart::Text(t) => escape(t),
            })
            .collect()
    }

    /// The pattern with its literal text in lower case, to compare with lower-cased values.
    pub fn lowercase(&self) -> Self {
        let parts = self
            .parts
            .iter()
            .map(|p| match p {
                LikePart::Text(t) => LikePart::Text(t.to_lowercase()),
                other => other.clone(),
            })
            .collect();
        Self { parts }
    }

    /// Whether the whole of `text` matches, comparing characters exactly.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let pattern: Vec<Option<Option<char>>> = self
            .parts
            .iter()
            .flat_map(|p| match p {
                LikePart::Any => vec![None],
                LikePart::One => vec![Some(None)],
                LikePart::Text(t) => t.chars().map(|c| Some(Some(c))).collect(),
            })
            .collect();
        // The classic wildcard matcher: on a mismatch, retry from the last `%` with one
        // more character swallowed. Linear per `%`, never exponential.
        let (mut t, mut p) = (0usize, 0usize);
        let mut last_any: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some(None) => {
                    last_any = Some((p, t));
                    p += 1;
                }
                Some(Some(c)) if c.is_none_or(|c| c == text[t]) => {
                    p += 1;
                    t += 1;
                }
                _ => match last_any {
                    Some((star, swallowed)) => {
                        last_any = Some((star, swallowed + 1));
                        p = star + 1;
                        t = swallowed + 1;
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(pattern: &str, text: &str) -> bool {
        LikePattern::parse(pattern).matches(text)
    }

    #[test]
    fn a_pattern_without_wildcards_matches_the_whole_value() {
        assert!(like("Async Rust", "Async Rust"));
        assert!(!like("Async Rust", "Async Rust 2"));
        assert!(!like("Rust", "Async Rust"));
        assert!(!like("rust", "Rust"));
    }

    #[test]
    fn wildcards_and_escapes() {
        assert!(like("%Rust%", "Async Rust book"));
        assert!(like("%", ""));
        assert!(like("a%%b", "ab"));
        assert!(like("_b_", "abc"));
        assert!(!like("_b_", "abcd"));
        assert!(like("%a%b%c", "xxaxbxbxc"));
        assert!(!like("%a%b%c", "xxaxbxbxcx"));
        assert!(like("50\\%", "50%"));
        assert!(!like("50\\%", "500"));
        assert!(like("a\\_c", "a_c"));
        assert!(!like("a\\_c", "abc"));
        assert!(like("x\\", "x\\"));
        assert!(like("é_", "éü"));
    }

    #[test]
    fn rendering_escapes_only_literals() {
        let p = LikePattern::parse("%a*\\%_");
        assert_eq!(
            p.parts(),
            &[LikePart::Any, LikePart::Text("a*%".into()), LikePart::One]
        );
        assert_eq!(p.render("*", "?", |t| t.replace('*', "[*]")), "*a[*]%?");
    }
}
