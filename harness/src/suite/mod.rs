//! The suite language: YAML files of tests, machines and steps.

pub mod duration;
mod load;
mod machines;
pub mod model;
mod raw;
pub mod template;
mod verbs;

pub use load::{load_file, load_str, LoadContext, LoadError, LoadErrors};
pub use model::*;

#[cfg(test)]
mod tests;
