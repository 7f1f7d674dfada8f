//! kola-style checks after every test: the console and the journal must show no kernel panic,
//! oops, BUG, emergency shell or failed unit start.

/// Substrings that fail a test wherever they appear on the console or in the kernel/PID 1 journal.
pub const BAD_PATTERNS: &[(&str, &str)] = &[
    ("Kernel panic - not syncing", "kernel panic"),
    ("Oops:", "kernel oops"),
    ("BUG: ", "kernel BUG"),
    ("kernel BUG at", "kernel BUG"),
    ("You are in emergency mode", "emergency shell"),
    ("Entering emergency mode", "emergency shell"),
    ("Starting emergency.service", "emergency shell"),
    ("Starting dracut-emergency.service", "emergency shell"),
    ("Failed to start ", "a unit failed to start"),
    ("Ignition failed", "Ignition failed"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: &'static str,
    pub source: &'static str,
    pub line: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in the {}: `{}`", self.what, self.source, self.line)
    }
}

/// Every offending line of `text` (the first per kind), quoting it.
pub fn scan(text: &str, source: &'static str) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for line in text.lines() {
        for (pat, what) in BAD_PATTERNS {
            if line.contains(pat) && !out.iter().any(|f| f.what == *what) {
                out.push(Finding {
                    what,
                    source,
                    line: clean(line),
                });
            }
        }
    }
    out
}

/// Strips terminal escapes and trims, so quotes stay readable and XML-safe.
pub fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        if c.is_control() && c != '\t' {
            continue;
        }
        out.push(c);
    }
    out.trim().chars().take(300).collect()
}

/// Parses `systemctl --failed --no-legend --plain` output into unit names.
pub fn failed_units(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.contains('.'))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kind_once_and_quotes_the_line() {
        let console = "ok\n[  1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n\
                       [FAILED] Failed to start \u{1b}[0;1;39mfoo.service\u{1b}[0m - Foo.\n\
                       [FAILED] Failed to start bar.service\n";
        let f = scan(console, "console");
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].what, "kernel panic");
        assert_eq!(f[1].line, "[FAILED] Failed to start foo.service - Foo.");
        assert!(f[1].to_string().contains("in the console"));
    }

    #[test]
    fn clean_console_has_no_findings() {
        assert!(scan(
            "Started foo.service\nReached target multi-user.target\n",
            "journal"
        )
        .is_empty());
    }

    #[test]
    fn parses_failed_units() {
        assert_eq!(
            failed_units(
                "foo.service loaded failed failed Foo\nbar.mount loaded failed failed Bar\n"
            ),
            vec!["foo.service", "bar.mount"]
        );
        assert!(failed_units("").is_empty());
    }
}
