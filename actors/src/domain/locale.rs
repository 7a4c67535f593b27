//! Translations of the menu's words, and which one a reader gets.

use serde::{Deserialize, Serialize};

use super::{check_name, check_text, DomainError};

/// The most translations one name (an item's, a group's, an option's) may have.
pub const MAX_TRANSLATIONS: usize = 20;
/// The longest locale tag: BCP 47's longest common forms (e.g. `zh-Hant-TW`) are far shorter.
const MAX_LOCALE_CHARS: usize = 35;

/// A BCP 47 language tag such as `ja`, `en`, `zh-Hans` (RFC 5646, §2.1): subtags of letters
/// and digits, 1 to 8 long, joined by `-`, the first being 2 to 3 letters (the language).
/// Kept as given; compared without regard to case, as §2.1.1 says tags are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Locale(String);

impl Locale {
    /// `BadInput` for anything else than the form above, or longer than 35 characters.
    pub fn parse(tag: &str) -> Result<Self, DomainError> {
        let bad = || {
            DomainError::BadInput(format!(
                "locale must be a BCP 47 tag such as ja, en or zh-Hans, of at most \
                 {MAX_LOCALE_CHARS} characters"
            ))
        };
        if tag.len() > MAX_LOCALE_CHARS {
            return Err(bad());
        }
        let mut subtags = tag.split('-');
        let language = subtags.next().unwrap_or_default();
        let language_ok =
            (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphabetic());
        let rest_ok = subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
        if language_ok && rest_ok {
            Ok(Self(tag.to_owned()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language subtag, e.g. `zh` of `zh-Hans`.
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or_default()
    }

    fn same(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

/// An item's name and description in one locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    pub locale: Locale,
    pub name: String,
    pub description: Option<String>,
}

/// A group's or an option's name in one locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameTranslation {
    pub locale: Locale,
    pub name: String,
}

/// Something with a locale, for [`pick`].
pub trait Localized {
    fn locale(&self) -> &Locale;
}

impl Localized for Translation {
    fn locale(&self) -> &Locale {
        &self.locale
    }
}

impl Localized for NameTranslation {
    fn locale(&self) -> &Locale {
        &self.locale
    }
}

/// The translation for `wanted`: the one with exactly that tag, else one with the tag's
/// language (`en` for `en-GB`, and `en-US` for `en`: the language's own tag first), else none,
/// and the caller shows its own words. An unparsable `wanted` finds none.
pub fn pick<'a, T: Localized>(translations: &'a [T], wanted: Option<&str>) -> Option<&'a T> {
    let wanted = Locale::parse(wanted?).ok()?;
    if let Some(exact) = translations
        .iter()
        .find(|t| t.locale().same(wanted.as_str()))
    {
        return Some(exact);
    }
    let language = wanted.language();
    translations
        .iter()
        .find(|t| t.locale().same(language))
        .or_else(|| {
            translations
                .iter()
                .find(|t| t.locale().language().eq_ignore_ascii_case(language))
        })
}

/// Checks a list of item translations: at most [`MAX_TRANSLATIONS`], one per locale, each
/// name 1 to `max_name` characters and description at most `max_description`.
pub fn check_translations(
    translations: Vec<(String, String, Option<String>)>,
    max_name: usize,
    max_description: usize,
) -> Result<Vec<Translation>, DomainError> {
    check_count(translations.len())?;
    let mut checked: Vec<Translation> = Vec::with_capacity(translations.len());
    for (locale, name, description) in translations {
        let locale = unique(&checked, &locale)?;
        let name = check_name("translated name", &name, max_name)?;
        let description = description
            .map(|mut d| check_text("translated description", &mut d, max_description).map(|()| d))
            .transpose()?;
        checked.push(Translation {
            locale,
            name,
            description,
        });
    }
    Ok(checked)
}

/// [`check_translations`] for names alone.
pub fn check_name_translations(
    translations: Vec<(String, String)>,
    max_name: usize,
) -> Result<Vec<NameTranslation>, DomainError> {
    check_count(translations.len())?;
    let mut checked: Vec<NameTranslation> = Vec::with_capacity(translations.len());
    for (locale, name) in translations {
        let locale = unique(&checked, &locale)?;
        let name = check_name("translated name", &name, max_name)?;
        checked.push(NameTranslation { locale, name });
    }
    Ok(checked)
}

fn check_count(count: usize) -> Result<(), DomainError> {
    if count > MAX_TRANSLATIONS {
        return Err(DomainError::BadInput(format!(
            "at most {MAX_TRANSLATIONS} translations"
        )));
    }
    Ok(())
}

fn unique<T: Localized>(seen: &[T], tag: &str) -> Result<Locale, DomainError> {
    let locale = Locale::parse(tag)?;
    if seen.iter().any(|t| t.locale().same(locale.as_str())) {
        return Err(DomainError::BadInput(format!(
            "locale {tag} is translated twice"
        )));
    }
    Ok(locale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tags: &[&str]) -> Vec<NameTranslation> {
        tags.iter()
            .map(|tag| NameTranslation {
                locale: Locale::parse(tag).unwrap(),
                name: format!("name in {tag}"),
            })
            .collect()
    }

    #[test]
    fn exact_tag_then_language_then_nothing() {
        let t = names(&["en-US", "en", "zh-Hans", "ZH-hant"]);
        let picked = |wanted| pick(&t, Some(wanted)).map(|t| t.locale.as_str());
        assert_eq!(picked("en-US"), Some("en-US"));
        assert_eq!(picked("en-GB"), Some("en"), "the language's own tag first");
        assert_eq!(picked("EN"), Some("en"));
        assert_eq!(picked("zh-Hant"), Some("ZH-hant"), "case does not matter");
        assert_eq!(picked("zh-TW"), Some("zh-Hans"), "any tag of the language");
        assert_eq!(picked("ja"), None);
        assert_eq!(picked("not a tag"), None);
        assert_eq!(pick(&t, None).map(|t| t.locale.as_str()), None);
        let only_regional = names(&["en-US"]);
        assert_eq!(
            pick(&only_regional, Some("en")).map(|t| t.locale.as_str()),
            Some("en-US")
        );
    }

    #[test]
    fn tags_are_checked() {
        for good in ["ja", "en", "zh-Hans", "zh-Hant-TW", "es-419", "haw"] {
            assert!(Locale::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "e",
            "english",
            "en_US",
            "en-",
            "-en",
            "zh-toolongsubtag",
            "ja\u{0}",
        ] {
            assert!(Locale::parse(bad).is_err(), "{bad}");
        }
        assert!(Locale::parse(&format!("en-{}", "a-".repeat(40))).is_err());
    }

    #[test]
    fn translations_are_bounded_and_unique() {
        let many: Vec<(String, String)> = (0..=MAX_TRANSLATIONS)
            .map(|i| (format!("x{}", (b'a' + (i % 26) as u8) as char), "n".into()))
            .collect();
        assert!(check_name_translations(many, 50).is_err());
        let twice = vec![("en".into(), "a".into()), ("EN".into(), "b".into())];
        assert!(check_name_translations(twice, 50).is_err());
        let ok = vec![("en".into(), " Ramen ".into())];
        assert_eq!(check_name_translations(ok, 50).unwrap()[0].name, "Ramen");
        let blank = vec![("en".into(), "  ".into())];
        assert!(check_name_translations(blank, 50).is_err());
    }
}
