//! Text that goes into HTML reports: terminal escapes removed, markup escaped, links kept
//! relative to the run folder.

use std::path::{Component, Path};

/// Removes ANSI/VT escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL|ESC \`, nF
/// `ESC ( B` and two-character `ESC x`) and control characters other than newline and tab.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    // String sequences end with BEL or ST (ESC \).
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(c) if (' '..='/').contains(&c) => {
                    // nF escapes (`ESC ( B`): intermediates, then one final byte.
                    for c in chars.by_ref() {
                        if !(' '..='/').contains(&c) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\n' | '\t' => out.push(c),
            '\r' => {
                // CRLF from the serial console reads as one newline.
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Report text as HTML: escape codes stripped, then escaped.
pub fn html(s: &str) -> String {
    escape(&strip_ansi(s))
}

/// The path of `target` inside `run_dir`, as plain components; None when it is not inside it
/// or would climb out (`..`).
pub fn relative_to(run_dir: &Path, target: &Path) -> Option<Vec<String>> {
    let rel = if target.is_absolute() {
        target.strip_prefix(run_dir).ok()?
    } else {
        target
    };
    rel.components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str().map(String::from),
            Component::CurDir => Some(String::new()),
            _ => None,
        })
        .filter(|s| s.as_deref() != Some(""))
        .collect()
}

/// A relative URL from path components: each one percent-encoded, so names with spaces, `#`,
/// `?` or `:` cannot turn into another URL.
pub fn href(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in p.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Seconds as people read them: `850 ms`, `12.3 s`, `4m 05s`, `1h 02m`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 1.0 {
        return format!("{:.0} ms", secs * 1000.0);
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_csi_osc_and_controls_but_keeps_lines() {
        let s = "\u{1b}[0;31mFAILED\u{1b}[0m \u{7}x\u{0}\r\n\u{1b}]0;title\u{7}ok\u{1b}]8;;u\u{1b}\\ln\tend\u{1b}(B";
        assert_eq!(strip_ansi(s), "FAILED x\nokln\tend");
        assert_eq!(strip_ansi("a\rb"), "a\nb");
        // A sequence cut short at the end of the text does not eat anything before it.
        assert_eq!(strip_ansi("tail \u{1b}[12"), "tail ");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            html("<script>alert(\"x\")</script> & 'y' \u{1b}[1m<b>"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39; &lt;b&gt;"
        );
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn links_stay_inside_the_run_folder() {
        let run = Path::new("/r/20261202-1");
        assert_eq!(
            relative_to(run, Path::new("/r/20261202-1/suite/test")),
            Some(vec!["suite".to_string(), "test".to_string()])
        );
        assert_eq!(relative_to(run, Path::new("/elsewhere/suite/test")), None);
        assert_eq!(relative_to(run, Path::new("/r/20261202-1/../x")), None);
        assert_eq!(
            relative_to(run, Path::new("./a/b")),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            href(&["my suite", "a#b?c", "https:x", "console.log"]),
            "my%20suite/a%23b%3Fc/https%3Ax/console.log"
        );
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(245.0), "4m 05s");
        assert_eq!(duration(3725.0), "1h 02m");
        assert_eq!(duration(f64::NAN), "?");
    }
}
