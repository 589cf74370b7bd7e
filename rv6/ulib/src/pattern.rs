//! grep's pattern matcher: xv6's (Kernighan and Pike's) regular expressions.
//!
//! * `c` matches the byte `c`; `.` any byte;
//! * `x*` zero or more of `x` (a byte or `.`), shortest first;
//! * `^` at the start anchors at the start of the text, `$` at the end at its end;
//!   elsewhere both are ordinary bytes.
//!
//! A match may be anywhere in the text (unless anchored). Matching works on bytes; the
//! recursion is at most as deep as the pattern is long.

/// True if `re` matches somewhere in `text`.
pub fn matches(re: &[u8], text: &[u8]) -> bool {
    if let Some(rest) = re.strip_prefix(b"^") {
        return match_here(rest, text);
    }
    // Every start position, the empty suffix included (so `$` and `x*` match "").
    (0..=text.len()).any(|i| match_here(re, &text[i..]))
}

/// `matches` for `&str`s.
pub fn matches_str(re: &str, text: &str) -> bool {
    matches(re.as_bytes(), text.as_bytes())
}

/// Does `re` match at the start of `text`?
fn match_here(re: &[u8], text: &[u8]) -> bool {
    match re {
        [] => true,
        [c, b'*', rest @ ..] => match_star(*c, rest, text),
        [b'$'] => text.is_empty(),
        [c, rest @ ..] => match text.split_first() {
            Some((t, text)) if *c == b'.' || c == t => match_here(rest, text),
            _ => false,
        },
    }
}

/// `c*` followed by `re` at the start of `text`.
fn match_star(c: u8, re: &[u8], text: &[u8]) -> bool {
    let mut i = 0;
    loop {
        if match_here(re, &text[i..]) {
            return true;
        }
        if i < text.len() && (text[i] == c || c == b'.') {
            i += 1;
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches_str as m;

    #[test]
    fn literals_match_anywhere() {
        assert!(m("abc", "abc"));
        assert!(m("bc", "abcd"));
        assert!(!m("abd", "abcd"));
        assert!(m("", "anything"));
        assert!(m("", ""));
        assert!(!m("a", ""));
    }

    #[test]
    fn dot_matches_any_byte() {
        assert!(m("a.c", "xxabcxx"));
        assert!(m("a.c", "a.c"));
        assert!(!m("a.c", "ac"));
        assert!(m("...", "abc"));
        assert!(!m("....", "abc"));
    }

    #[test]
    fn anchors() {
        assert!(m("^ab", "abc"));
        assert!(!m("^bc", "abc"));
        assert!(m("bc$", "abc"));
        assert!(!m("ab$", "abc"));
        assert!(m("^abc$", "abc"));
        assert!(!m("^abc$", "abcd"));
        assert!(m("^$", ""));
        assert!(!m("^$", "x"));
        assert!(m("$", "abc"));
        assert!(m("^", "abc"));
    }

    #[test]
    fn anchors_elsewhere_are_literal() {
        assert!(m("a^b", "xa^by"));
        assert!(!m("a^b", "ab"));
        assert!(m("a$b", "a$b"));
        assert!(!m("a$b", "ab"));
        assert!(m("^^", "^x"));
        assert!(m("$$", "x$"));
    }

    #[test]
    fn star() {
        assert!(m("ab*c", "ac"));
        assert!(m("ab*c", "abc"));
        assert!(m("ab*c", "abbbbc"));
        assert!(!m("ab*c", "abxc"));
        assert!(m("^a*$", ""));
        assert!(m("^a*$", "aaaa"));
        assert!(!m("^a*$", "aaba"));
        assert!(m("^.*$", "anything at all"));
        assert!(m("a.*z", "a to z"));
        assert!(!m("a.*z", "z to a"));
        assert!(m("^x*y*z$", "xxyyyz"));
        assert!(m("^x*y*z$", "z"));
        assert!(!m("^x*y*z$", "yx z"));
    }

    #[test]
    fn star_needs_backtracking() {
        // `.*` first takes nothing, then grows until the rest matches.
        assert!(m("^.*ab$", "ababab"));
        assert!(m("^a*ab$", "aaab"));
        assert!(!m("^a*ab$", "aaa"));
    }

    #[test]
    fn a_star_with_nothing_to_repeat_is_literal() {
        // As in xv6: a byte repeats only when a `*` follows it; a `*` first is a byte.
        assert!(m("*", "a*b"));
        assert!(!m("*", "ab"));
    }

    #[test]
    fn xv6_grep_examples() {
        assert!(m("the", "Once upon the time"));
        assert!(m("^Once", "Once upon the time"));
        assert!(m("time$", "Once upon the time"));
        assert!(!m("^time", "Once upon the time"));
        assert!(m("u.on", "Once upon the time"));
    }

    #[test]
    fn bytes_not_chars() {
        assert!(super::matches(b"a.b", b"a\xffb"));
        assert!(m("é", "café"));
    }
}
