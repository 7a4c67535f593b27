//! Text as people read it. Every text a client sends (names, notes, messages, reasons,
//! idempotency keys) goes through [`check_text`] or [`check_name`], which first bring it to
//! Unicode Normalization Form C (UAX #15), so that texts a person cannot tell apart count,
//! compare and are stored the same: `が` typed as one code point or as `か` plus a combining
//! mark is the same character here.
//!
//! A *character* is an extended grapheme cluster (UAX #29) of the NFC text: what a person
//! counts as one, an emoji with its modifiers included. Since one cluster can stack any number
//! of combining marks, a text also holds at most [`CODE_POINTS_PER_CHARACTER`] code points per
//! character of its limit.

use super::DomainError;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use unicode_segmentation::UnicodeSegmentation;

/// Code points allowed per character of a limit: room for a base letter with combining
/// marks, or a family emoji (7 code points), while a text of stacked marks stays bounded.
pub const CODE_POINTS_PER_CHARACTER: usize = 8;

/// Brings `text` to NFC in place; allocates only when it is not NFC already.
pub fn normalize(text: &mut String) {
    if is_nfc_quick(text.chars()) != IsNormalized::Yes {
        *text = text.nfc().collect();
    }
}

/// The characters of `text` as a person counts them: its extended grapheme clusters.
pub fn characters(text: &str) -> usize {
    text.graphemes(true).count()
}

/// Whether a person would call `text` blank: nothing in it shows. White space (Unicode's
/// White_Space property) and the invisible format characters that display as nothing.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// Format and filler characters that render as nothing on their own: zero-width space and
/// joiners, word joiner and invisible operators, the byte-order mark, soft hyphen, variation
/// selectors, combining grapheme joiner, and the Hangul and Mongolian fillers.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// Trims what a person would not see at either end: white space and invisible characters.
pub fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || is_invisible(c))
}

/// Free text from a client: normalized to NFC in place, then at most `max_chars` characters
/// (and `max_chars` × [`CODE_POINTS_PER_CHARACTER`] code points), no control characters
/// except line breaks and tabs.
///
/// Errors: [`DomainError::BadInput`] naming `field`.
pub fn check_text(field: &str, text: &mut String, max_chars: usize) -> Result<(), DomainError> {
    normalize(text);
    let too_long =
        || DomainError::BadInput(format!("{field} is longer than {max_chars} characters"));
    let code_points = text.chars().count();
    if code_points > max_chars.saturating_mul(CODE_POINTS_PER_CHARACTER) {
        return Err(too_long());
    }
    if code_points > max_chars && characters(text) > max_chars {
        return Err(too_long());
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(DomainError::BadInput(format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

/// A name: free text as [`check_text`] checks it, trimmed of what does not show at either end,
/// and not blank. Returns the name as it is stored.
///
/// Errors: [`DomainError::BadInput`] naming `field`.
pub fn check_name(field: &str, name: &str, max_chars: usize) -> Result<String, DomainError> {
    let mut name = trim(name).to_owned();
    if name.is_empty() || is_blank(&name) {
        return Err(DomainError::BadInput(format!("{field} must not be empty")));
    }
    check_text(field, &mut name, max_chars)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_and_decomposed_kana_are_the_same_text() {
        let composed = "が".repeat(200);
        let mut decomposed: String = composed.nfd().collect();
        assert_eq!(decomposed.chars().count(), 400);
        assert!(check_text("note", &mut decomposed, 200).is_ok());
        assert_eq!(decomposed, composed, "stored composed");
        let mut longer = "が".repeat(201).nfd().collect::<String>();
        assert!(check_text("note", &mut longer, 200).is_err());
    }

    #[test]
    fn a_character_is_what_a_person_counts() {
        // A family: 5 code points, one character; a flag: 2 code points, one character.
        let mut family = "👨\u{200D}👩\u{200D}👧".repeat(10);
        assert!(check_text("note", &mut family, 10).is_ok());
        let mut flags = "🇯🇵".repeat(11);
        assert!(check_text("note", &mut flags, 10).is_err());
        // A base letter under a pile of marks is one cluster, but bounded.
        let mut zalgo = format!("e{}", "\u{0301}".repeat(100));
        assert!(check_text("note", &mut zalgo, 10).is_err());
    }

    #[test]
    fn what_does_not_show_is_blank() {
        for blank in [
            "",
            "  ",
            "\u{200B}",
            "\u{3000}\u{FEFF}",
            "\u{3164}",
            " \u{2060} ",
        ] {
            assert!(is_blank(blank), "{blank:?}");
            assert!(check_name("name", blank, 50).is_err(), "{blank:?}");
        }
        assert_eq!(
            check_name("name", "\u{200B} Terrace\u{3000}", 50).as_deref(),
            Ok("Terrace")
        );
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_are_kept() {
        let mut text = "two\nlines\tand a tab".to_owned();
        assert!(check_text("note", &mut text, 50).is_ok());
        let mut escape = "\u{1b}[2J".to_owned();
        assert!(check_text("note", &mut escape, 50).is_err());
    }
}
