//! longwriter: a terminal writing studio for ultra-long-form text.
//!
//! Modules follow the data flow: [`models`] (registry and downloads) → [`engine`]
//! (local inference) → [`text`] (word counts, think/answer parsing) → … → `cli`.
//! Only the studio touches the terminal; everything else is headless and testable.

pub mod cli;
pub mod config;
pub mod convert;
pub mod engine;
pub mod eval;
pub mod fsutil;
pub mod models;
pub mod nn;
pub mod paths;
pub mod remote;
pub mod reward;
pub mod rl;
pub mod serve;
pub mod sessions;
pub mod studio;
pub mod text;
pub mod write;
