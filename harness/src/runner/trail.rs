//! What a test (or a template's setup) writes down as it goes: its step log, kept whole for
//! the result and sent line by line, as step events, to the run's reporters (`Tell`); and
//! every update step's record.

use super::result::UpdateRecord;
use crate::report::steps_log::{render, StepEnd, StepEvent};
use crate::report::Event;
use crate::suite::TestId;
use std::path::PathBuf;
use tokio::sync::mpsc::UnboundedSender;

/// Where a test's step events go while it runs: the runner's loop, which hands them to the
/// reporters.
#[derive(Clone)]
pub struct Tell {
    pub tx: UnboundedSender<Event>,
    pub test: TestId,
    /// The attempt's folder.
    pub dir: PathBuf,
}

impl Tell {
    fn send(&self, step: StepEvent) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // The loop is gone only when the run is over; nobody is left to read it then.
        let _ = self.tx.send(Event::Step {
            test: self.test.clone(),
            dir: self.dir.clone(),
            at_ms,
            step,
        });
    }
}

/// The step log: `writeln!` into it writes a note; `started` and `finished` mark the steps.
#[derive(Default)]
pub struct Log {
    text: String,
    /// Where the line not yet sent starts.
    sent: usize,
    tell: Option<Tell>,
}

impl Log {
    pub fn new(tell: Option<Tell>) -> Log {
        Log {
            tell,
            ..Log::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The whole log; a last line without its newline is sent too.
    pub fn into_text(mut self) -> String {
        if self.sent < self.text.len() {
            self.text.push('\n');
            self.send_lines();
        }
        self.text
    }

    pub fn started(&mut self, index: usize, verb: &'static str, loc: String, setup: bool) {
        self.event(StepEvent::Started {
            index,
            verb,
            loc,
            setup,
        });
    }

    pub fn finished(&mut self, index: usize, end: StepEnd, secs: f64) {
        self.event(StepEvent::Finished { index, end, secs });
    }

    fn event(&mut self, ev: StepEvent) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.send_lines();
        self.text.push_str(&render(&ev));
        self.sent = self.text.len();
        if let Some(t) = &self.tell {
            t.send(ev);
        }
    }

    /// Sends every complete line not sent yet as a note.
    fn send_lines(&mut self) {
        while let Some(n) = self.text[self.sent..].find('\n') {
            let line = self.text[self.sent..self.sent + n].to_string();
            self.sent += n + 1;
            if let Some(t) = &self.tell {
                t.send(StepEvent::Note(line));
            }
        }
    }
}

impl std::fmt::Write for Log {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.text.push_str(s);
        if s.contains('\n') {
            self.send_lines();
        }
        Ok(())
    }
}

/// A test's (or a template setup's) log and its update steps' records.
#[derive(Default)]
pub struct Trail {
    pub log: Log,
    pub updates: Vec<UpdateRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    #[test]
    fn every_line_is_sent_once_and_the_text_is_what_steps_log_shows() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut log = Log::new(Some(Tell {
            tx,
            test: TestId::new("s", "t"),
            dir: PathBuf::from("/r/t"),
        }));
        write!(log, "node up").unwrap();
        writeln!(log, ": SSH banner 20.1s\nsecond line").unwrap();
        log.started(1, "run", "s.yaml:4".into(), false);
        write!(log, "no newline yet").unwrap();
        log.finished(1, StepEnd::Passed, 0.5);
        write!(log, "last").unwrap();
        let text = log.into_text();
        let mut sent = String::new();
        while let Ok(Event::Step { step, dir, .. }) = rx.try_recv() {
            assert_eq!(dir, PathBuf::from("/r/t"));
            sent.push_str(&render(&step));
        }
        assert_eq!(sent, text);
        assert_eq!(
            text,
            "node up: SSH banner 20.1s\nsecond line\n--- step 1 (run at s.yaml:4)\nno newline yet\n    (0.5s)\nlast\n"
        );
    }
}
