//! Bad documents for the readers' fuzz tests: arbitrary text, and a valid file broken a few
//! ways at once (lines deleted, duplicated, swapped or re-indented, a key misspelt, a value of
//! the wrong type, a snippet of odd text inserted, the file cut at a byte).

use proptest::prelude::*;

/// Text that is not a document at all: any unicode, or the characters YAML and JSON give a
/// meaning to.
pub fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,200}",
        "[a-z_ :{}\\[\\],\\-\"'&*!#|>?%@`~0-9.\n\t\\\\]{0,200}",
    ]
}

/// Values of the wrong type or shape, for YAML and JSON alike.
const VALUES: &[&str] = &[
    "",
    "~",
    "null",
    "true",
    "0",
    "-1",
    "1.5",
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "NaN",
    "99999999999999999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "[]",
    "{}",
    "[1, [2, {a: b}]]",
    "{x: 1, y: [true]}",
    "\"\"",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"{{ image.nope\"",
    "\"{{ images.gamma.version }}\"",
    "\"(\"",
    "\"[z-a]\"",
    "0s",
    "7 days",
    "5",
    "2027-02-30",
    "inactive-slot",
    "/dev/null",
    "../x.qcow2",
    "\"1/0\"",
    "&a x",
    "*a",
    "*nope",
    "!!binary aGk=",
    "!custom x",
    "|\n  block",
    ">-\n  folded",
];

/// Odd text to insert at the start of a line or mid-line.
const SNIPPETS: &[&str] = &[
    "\t",
    "\tkey: value",
    "  ",
    "\u{feff}",
    "\u{202e}",
    "\u{200b}",
    "\u{85}",
    "\u{2028}",
    "\u{0}",
    "\r",
    "ß😀",
    "---",
    "...",
    "---\nsecond: document",
    "? [complex, key]\n: value",
    "<<: *base",
    "<<: {a: 1}",
    "&anchor",
    "*alias",
    "%YAML 1.2",
    "# comment",
    ":",
    "- ",
    "{",
    "[",
    "}",
    "]",
    "\"",
    "'",
    ",",
    "\"unterminated",
    "unknown_key: 1",
    "99999999999999999999999999999",
];

/// One way to break a document. Line numbers and byte offsets are taken modulo its size.
#[derive(Debug, Clone)]
pub enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
    Dedent(usize),
    /// The text after the line's first `:` becomes this value.
    ReplaceValue(usize, &'static str),
    /// The line's key gets a character more.
    MisspellKey(usize, char),
    Insert(usize, usize, &'static str),
    /// Nesting N levels deep at a line: `[[[…]]]` or `{a: {a: …}}`.
    Nest(usize, usize, bool),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop::sample::select(VALUES);
    let snippet = prop::sample::select(SNIPPETS);
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 1usize..9).prop_map(|(a, n)| Mutation::Indent(a, n)),
        any::<usize>().prop_map(Mutation::Dedent),
        (any::<usize>(), value).prop_map(|(a, v)| Mutation::ReplaceValue(a, v)),
        (any::<usize>(), prop::char::range('a', 'z'))
            .prop_map(|(a, c)| Mutation::MisspellKey(a, c)),
        (any::<usize>(), any::<usize>(), snippet).prop_map(|(a, b, s)| Mutation::Insert(a, b, s)),
        (any::<usize>(), 1usize..400, any::<bool>()).prop_map(|(a, n, m)| Mutation::Nest(a, n, m)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// One of `docs`, broken by one to four mutations.
pub fn broken(docs: &[&str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(docs.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
        prop::collection::vec(mutation(), 1..5),
    )
        .prop_map(|(doc, ms)| ms.iter().fold(doc, |d, m| apply(&d, m)))
}

/// The last char boundary of `s` at or before byte `at`.
fn boundary(s: &str, at: usize) -> usize {
    (0..=at.min(s.len()))
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0)
}

pub fn apply(doc: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = doc.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match m {
        Mutation::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let i = i % n;
            lines.insert(i, lines[i].clone());
        }
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::Indent(i, k) => {
            let i = i % n;
            lines[i] = format!("{}{}", " ".repeat(*k), lines[i]);
        }
        Mutation::Dedent(i) => {
            let i = i % n;
            lines[i] = lines[i].trim_start().to_string();
        }
        Mutation::ReplaceValue(i, v) => {
            let i = i % n;
            if let Some(c) = lines[i].find(':') {
                lines[i] = format!("{} {v}", &lines[i][..=c]);
            }
        }
        Mutation::MisspellKey(i, ch) => {
            let i = i % n;
            if let Some(c) = lines[i].find(':') {
                lines[i].insert(c, *ch);
            }
        }
        Mutation::Insert(i, at, s) => {
            let i = i % n;
            let at = boundary(&lines[i], at % (lines[i].len() + 1));
            lines[i].insert_str(at, s);
        }
        Mutation::Nest(i, depth, map) => {
            let i = i % n;
            let deep = if *map {
                format!("{}1{}", "{a: ".repeat(*depth), "}".repeat(*depth))
            } else {
                format!("{}1{}", "[".repeat(*depth), "]".repeat(*depth))
            };
            match lines[i].find(':') {
                Some(c) => lines[i] = format!("{} {deep}", &lines[i][..=c]),
                None => lines[i] = deep,
            }
        }
        Mutation::Truncate(at) => {
            let text = lines.join("\n");
            let at = boundary(&text, at % (text.len() + 1));
            return text[..at].to_string();
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Fails the case unless `message` begins with `path:LINE:COLUMN: ` (both from 1), after
/// `prefix`.
pub fn located(message: &str, prefix: &str, path: &std::path::Path) -> Result<(), TestCaseError> {
    let re = regex::Regex::new(&format!(
        r"^{}{}:[1-9][0-9]*:[1-9][0-9]*: \S",
        regex::escape(prefix),
        regex::escape(&path.display().to_string())
    ))
    .unwrap();
    prop_assert!(
        re.is_match(message),
        "not located at {}:LINE:COLUMN: {:?}",
        path.display(),
        message
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_break_what_they_say() {
        let doc = "a: 1\nb: 2\n";
        assert_eq!(apply(doc, &Mutation::Truncate(2)), "a:");
        assert_eq!(
            apply(doc, &Mutation::ReplaceValue(1, "[]")),
            "a: 1\nb: []\n"
        );
        assert_eq!(apply(doc, &Mutation::MisspellKey(0, 'z')), "az: 1\nb: 2\n");
        assert_eq!(apply(doc, &Mutation::Nest(2, 2, false)), "a: [[1]]\nb: 2\n");
        assert_eq!(apply(doc, &Mutation::SwapLines(0, 3)), "b: 2\na: 1\n");
    }
}
