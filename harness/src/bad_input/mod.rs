//! Bad input for the four readers (suites, channels.yaml, the promotion policy, summary.json):
//! fuzzed, and the README's table of what a user sees, one test per row.

mod fuzz;
mod mutate;
mod table;
