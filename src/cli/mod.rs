//! The command line: clap subcommands, each in its own file. Errors surface as one line
//! with a hint and a non-zero exit code.

mod bench;
mod load;
mod models;
mod progress;
mod write;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use load::{load_engine, resolve_model, ModelChoice};
pub use progress::BarProgress;

#[derive(Parser, Debug)]
#[command(name = "longwriter", version, about = "A terminal writing studio for ultra-long-form text", long_about = None)]
pub struct Cli {
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "cpu", env = "LONGWRITER_DEVICE")]
    pub device: String,
    /// Threads for CPU inference (default: all cores).
    #[arg(long, global = true, env = "LONGWRITER_THREADS")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a text headlessly: the answer streams to stdout, the think trace to stderr.
    Write(write::WriteArgs),
    /// List, download, verify or remove models of the registry.
    #[command(subcommand)]
    Models(models::ModelsCmd),
    /// Measure prefill and decode speed and peak memory.
    Bench(bench::BenchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // candle's CPU kernels size their pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    init_stderr_logging();
    let result = match cli.command {
        Some(Command::Write(a)) => write::run(a, &cli.device),
        Some(Command::Models(c)) => models::run(c),
        Some(Command::Bench(a)) => bench::run(a, &cli.device),
        None => Err(anyhow::anyhow!("the studio is not built yet; try `longwriter write \"PROMPT\"` or `longwriter --help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s.replace('\n', " ")
}

fn init_stderr_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LONGWRITER_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
