//! Who is who: the key under which an email is unique and found, and the characters a display
//! name may not hide behind.
//!
//! An email's key is its NFC form case-folded with full Unicode case folding, then NFC again
//! (folding can denormalise): `josé` typed precomposed or decomposed, `straße`, `STRASSE` and
//! `Strasse` are one address. The address as the user typed it (trimmed, NFC) is what is shown.
//! Accounts registered before keys existed get theirs at start-up (`backfill_email_keys`);
//! where two of them fold to one key, the older keeps the key and the newer stays without,
//! reachable by the exact (case-insensitive) address it was registered with.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::store::{users, StoreError};

/// Legacy accounts given their key per statement at start-up.
const BACKFILL_BATCH: i64 = 1000;

/// Batches retried because a concurrent registration took a key first, before start-up gives
/// up (it takes one such race per retry, so more means something else is wrong).
const MAX_BACKFILL_CLASHES: u32 = 10;

/// The key under which `email` (already trimmed and validated) is unique.
pub fn email_key(email: &str) -> String {
    let nfc: String = email.nfc().collect();
    caseless::default_case_fold_str(&nfc).nfc().collect()
}

/// `email` as stored and shown: as typed, in NFC.
pub fn display_email(email: &str) -> String {
    email.nfc().collect()
}

/// Characters a name or email may not contain: controls (category Cc) and format characters
/// (Cf: zero-width spaces and joiners, bidi overrides and isolates, the BOM, soft hyphens),
/// which are invisible or reorder the text around them, so two names that look the same
/// could differ, or a name could spoof what follows it.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || c.general_category() == GeneralCategory::Format
}

/// Whether a display name contains a hidden character (`is_hidden`), the joiners excepted
/// where they join: ZERO WIDTH JOINER and NON-JOINER between two visible characters are how
/// emoji sequences (a family, a profession) and Persian or Indic words are written.
pub fn name_has_hidden(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    let visible = |c: Option<&char>| c.is_some_and(|c| !is_hidden(*c) && !c.is_whitespace());
    chars.iter().enumerate().any(|(i, &c)| {
        is_hidden(c)
            && !(matches!(c, '\u{200c}' | '\u{200d}')
                && i > 0
                && visible(chars.get(i - 1))
                && visible(chars.get(i + 1)))
    })
}

/// Gives every account registered before email keys existed its key, oldest first, leaving
/// without one those whose key an older account holds. Idempotent: runs at every start-up
/// and finds nothing to do once done (a `WHERE email_key IS NULL` scan of its index).
pub async fn backfill_email_keys(pool: &deadpool_postgres::Pool) -> Result<(), String> {
    let client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let mut after = 0i64;
    let mut given = 0u64;
    let mut clashes = 0;
    loop {
        let batch = users::without_email_key(&client, after, BACKFILL_BATCH)
            .await
            .map_err(|e| format!("email keys: {e}"))?;
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        let keys: Vec<String> = batch.iter().map(|(_, email)| email_key(email)).collect();
        match users::give_email_keys(&client, &ids, &keys).await {
            Ok(n) => {
                given += n;
                after = last;
            }
            // A registration (or another process's backfill) took one of the keys meanwhile:
            // the batch again, whose NOT EXISTS now sees it.
            Err(StoreError::EmailTaken) if clashes < MAX_BACKFILL_CLASHES => clashes += 1,
            Err(e) => return Err(format!("email keys: {e}")),
        }
    }
    if given > 0 {
        tracing::info!(accounts = given, "gave existing accounts their email keys");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_emails_have_one_key() {
        let nfc = "jos\u{e9}@example.com";
        let nfd = "jose\u{301}@example.com";
        assert_ne!(nfc, nfd);
        assert_eq!(email_key(nfc), email_key(nfd));
        assert_eq!(email_key("JOS\u{c9}@Example.COM"), email_key(nfd));
        assert_eq!(email_key("stra\u{df}e@example.com"), "strasse@example.com");
        assert_eq!(email_key("STRASSE@example.com"), "strasse@example.com");
        assert_eq!(
            email_key("STRA\u{1e9e}E@example.com"),
            "strasse@example.com"
        );
        assert_ne!(email_key("ann@example.com"), email_key("anne@example.com"));
        assert_eq!(display_email(nfd), nfc);
    }

    #[test]
    fn invisible_and_control_characters_are_hidden_ones() {
        for c in [
            '\u{200b}', '\u{200d}', '\u{202e}', '\u{2066}', '\u{feff}', '\u{ad}', '\n', '\u{7f}',
        ] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['a', '\u{e9}', ' ', '\u{301}', '\u{4e2d}', '\u{1f600}'] {
            assert!(!is_hidden(c), "{c:?}");
        }
        // In names, a joiner between two visible characters is writing, not hiding.
        let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
        assert!(!name_has_hidden(family));
        assert!(!name_has_hidden(
            "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}"
        ));
        for name in [
            "a\u{200b}b",
            "\u{202e}evil",
            "\u{200d}a",
            "a\u{200d}",
            "a \u{200d}b",
            "a\u{200d}\u{200d}b",
        ] {
            assert!(name_has_hidden(name), "{name:?}");
        }
    }
}
