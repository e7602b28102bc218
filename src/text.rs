//! Text helpers that several modules share, each in one place: cutting a text short for a log
//! line or a message, and the form in which two spellings of a Korean name compare equal.

/// `s` cut to its first `max` characters, with "…" after a cut (characters, never bytes: no
/// Korean syllable is split).
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// `s` on one line (every run of white space one space), cut like [`truncate`]. For error bodies
/// that hold whole tracebacks or HTML pages: reading stops once `max` characters are in.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for word in s.split_whitespace() {
        if chars > 0 {
            out.push(' ');
            chars += 1;
        }
        out.push_str(word);
        chars += word.chars().count();
        if chars > max {
            return truncate(&out, max);
        }
    }
    out
}

/// A Korean name as names are compared: without spaces, middle dots and hyphens, lower-cased,
/// so that "SK 하이닉스", "SK하이닉스" and "최 태원", "최태원" are one name each.
pub fn name_key(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '・' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("반도체 수출", 3), "반도체…");
        assert_eq!(truncate("반도체", 3), "반도체");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn one_line_folds_white_space_then_cuts() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("Traceback\n  File \"x\"\n", 12), "Traceback Fi…");
        assert_eq!(one_line(&"가 ".repeat(1000), 5), "가 가 가…");
    }

    #[test]
    fn name_keys_ignore_spacing_dots_hyphens_and_case() {
        assert_eq!(name_key("SK 하이닉스"), name_key("sk하이닉스"));
        assert_eq!(name_key("최 태원"), "최태원");
        assert_eq!(name_key("한빛·전자"), name_key("한빛-전자"));
        assert_ne!(name_key("최태원"), name_key("최태훈"));
    }
}
