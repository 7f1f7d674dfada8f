//! Aviary: boots candidate OS images in QEMU, runs YAML suites against them, reports JUnit.

#[cfg(test)]
mod bad_input;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod cloud_init;
pub mod commands;
pub mod disk;
pub mod error;
pub mod failure;
pub mod gate;
pub mod ignition;
pub mod images;
pub mod interrupt;
pub mod machine;
pub mod private;
pub mod profile;
pub mod report;
pub mod runner;
pub mod shard;
pub mod ssh;
pub mod suite;
pub mod update_server;
