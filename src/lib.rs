//! otpbox as a library: the crate root of every module. The binary (`main.rs`) reaches only
//! the command line, the configuration and the subcommands; the fuzz targets (`fuzz/`) reach
//! only [`fuzz`], the parsers that read what arrives from outside. Everything else stays
//! private to the crate, so the compiler still reports dead code.

mod app;
mod assets;
mod backup;
mod bench;
pub mod cli;
mod clock;
pub mod commands;
pub mod config;
mod cpu;
mod db;
mod domain;
pub mod fuzz;
mod goip;
mod http;
mod jobs;
mod lifecycle;
mod metrics;
mod notify;
mod oidc;
mod outbound;
mod payments;
mod qr;
mod smtp;
mod upstream;
mod url;
mod views;
