//! Glob matching with Redis's `stringmatchlen` rules: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\`
//! escapes, byte-wise, optionally case-insensitive. Used by KEYS, SCAN MATCH, CONFIG GET and
//! pattern subscriptions.

pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    // Bounded backtracking: the only branching is on `*`, and only the last `*` needs retrying
    // (Redis recurses; a stack overflow on hostile patterns is not an option here).
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                        p += 1;
                    }
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((true, next)) = class_match(pattern, p, s[i], nocase) {
                        p = next;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if eq(pattern[p + 1], s[i]) {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if eq(c, s[i]) {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[p] == '['`. Returns (matched, index after
/// the class). An unterminated class runs to the end of the pattern, as in Redis.
fn class_match(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let mut j = p + 1;
    let not = j < pattern.len() && pattern[j] == b'^';
    if not {
        j += 1;
    }
    let low = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    let c = low(c);
    let mut matched = false;
    loop {
        if j >= pattern.len() {
            // Redis: "[" without "]" - the pattern ends here; treat as end of class.
            break;
        }
        if pattern[j] == b'\\' && j + 1 < pattern.len() {
            j += 1;
            if low(pattern[j]) == c {
                matched = true;
            }
        } else if pattern[j] == b']' {
            break;
        } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' {
            let (mut a, mut b) = (low(pattern[j]), low(pattern[j + 2]));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            j += 2;
            if c >= a && c <= b {
                matched = true;
            }
        } else if low(pattern[j]) == c {
            matched = true;
        }
        j += 1;
    }
    let next = if j < pattern.len() { j + 1 } else { j };
    Some((matched != not, next))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_patterns() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes(), false);
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("user:*:name", "user:42:name"));
        assert!(!m("a*b", "acbd"));
        assert!(m("*a*b*c*", "xxaxxbxxc"));
        assert!(glob_match(b"HELLO", b"hello", true));
    }
}
