//! The command line: clap subcommands, each in its own file. Errors surface as one line
//! with a hint and a non-zero exit code.

mod bench;
mod complete;
mod config;
mod eval;
mod load;
mod models;
mod progress;
mod reward_serve;
mod rewards;
mod score;
mod sessions;
mod train;
mod write;

use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use crate::write::{open_completer, open_local, open_writer, resolve_model};
pub use load::{load_base_engine, load_writer, ModelChoice};
pub use progress::{count_bar, BarProgress};

/// This build: the crate version and the commit it was built from (see `build.rs`), as
/// `--version` and `bench --json` print it.
pub const BUILD: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LONGWRITER_COMMIT"), ")");
pub use rewards::{QualityChoice, RewardArgs, ServerArgs};

#[derive(Parser, Debug)]
#[command(after_help = "With no subcommand, opens the writing studio.")]
#[command(name = "longwriter", version = BUILD, about = "A terminal writing studio for ultra-long-form text", long_about = None)]
pub struct Cli {
    /// Compute device: cpu, cuda or cuda:N [default: cpu, or `device` in config.toml].
    #[arg(long, global = true, env = "LONGWRITER_DEVICE")]
    pub device: Option<String>,
    /// Threads for CPU inference (default: all cores).
    #[arg(long, global = true, env = "LONGWRITER_THREADS")]
    pub threads: Option<usize>,
    /// Studio: the model to write with (registry name or .gguf path).
    #[arg(long, short, add = complete::models())]
    pub model: Option<String>,
    /// Studio: the prompt template [default: longwriter, or `template` in config.toml].
    #[arg(long, value_enum)]
    pub template: Option<crate::write::WriteMode>,
    /// Studio: maximum new tokens per generation (default: the model's registry setting).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Studio: the seed of every draft, so drafts can be reproduced [default: a fresh seed
    /// for each draft (F5), shown in the status bar and saved with the session; or `seed`
    /// in config.toml].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Studio: reopen a saved session (see `longwriter sessions list`).
    #[arg(long, add = complete::sessions())]
    pub session: Option<i64>,
    /// Studio: colour theme (dark, light, high-contrast, or one in <config>/themes/).
    #[arg(long, env = "LONGWRITER_THEME")]
    pub theme: Option<String>,
    /// Studio: the quality judge (registry name, .gguf path, or an OpenAI-compatible base URL
    /// ending in /v1). Without it, quality is the labelled fluency proxy on the writing model.
    #[arg(long)]
    pub judge: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Studio: the job file the Train tab (F8) starts with `n`
    /// [default: the shipped job short-format-length].
    #[arg(long)]
    pub train_job: Option<std::path::PathBuf>,
    /// Forces a panic, for terminal-safety tests.
    #[arg(long, hide = true, value_parser = ["ui", "worker"])]
    pub debug_panic: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

fn studio(cli: &Cli, cfg: &Settings, device: String) -> anyhow::Result<()> {
    let entry = resolve_model(cli.model.as_deref().or(cfg.model.as_deref()))?;
    let mut sampler = cfg.sampler(&crate::engine::SamplerConfig::from_defaults(&entry.sampling));
    let fixed_seed = cli.seed.or(cfg.sampling.seed);
    sampler.seed = fixed_seed.unwrap_or_else(rand::random);
    let max_tokens = cli.max_tokens.or(cfg.sampling.max_tokens).or(entry.sampling.max_tokens).unwrap_or(2048);
    let train_job = cli.train_job.clone().or_else(|| cfg.train_job.clone()).unwrap_or_else(|| "short-format-length".into());
    let template = cli.template.unwrap_or_else(|| cfg.template_for(&entry));
    let length = crate::write::LengthControl { floor: cfg.sampling.answer_floor.or(entry.sampling.answer_floor), nudge: cfg.sampling.end_nudge.or(entry.sampling.end_nudge) };
    let max_think_tokens = cfg.sampling.max_think_tokens.or(entry.sampling.max_think_tokens);
    crate::studio::run(crate::studio::StudioOptions {
        entry,
        length,
        device,
        template,
        sampler,
        max_tokens,
        max_think_tokens,
        session: cli.session,
        theme: cli.theme.clone().or_else(|| cfg.theme.clone()),
        debug_panic: cli.debug_panic.clone(),
        judge: cli.judge.clone().or_else(|| cfg.judge.clone()),
        api_model: cli.server.api_model.clone(),
        api_key: cli.server.api_key.clone(),
        train_job: Some(train_job),
        fresh_seed: fixed_seed.is_none(),
    })
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
    /// Score a model output: length (against the prompt's target), format, repetition, quality.
    Score(score::ScoreArgs),
    /// Serve the rewards over HTTP to RL trainers (OpenRLHF, TRL, verl).
    RewardServe(reward_serve::ServeArgs),
    /// List, search, show or delete saved writing sessions.
    #[command(subcommand)]
    Sessions(sessions::SessionsCmd),
    /// Export a session to markdown with YAML front matter.
    Export(sessions::ExportArgs),
    /// Fine-tune with GRPO + LoRA: start (--config), resume (--resume) or export a run.
    Train(train::TrainArgs),
    /// List, show or watch training runs.
    #[command(subcommand)]
    Runs(train::RunsCmd),
    /// Evaluate: LongBench-Write length and quality scores, pairwise comparison with Elo,
    /// quality decay along a text.
    #[command(subcommand)]
    Eval(eval::EvalCmd),
    /// Show, check or create config.toml (standing defaults for model, template, sampling…).
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Print a shell completion script: `longwriter completions bash > ~/.local/share/bash-completion/completions/longwriter`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `longwriter man > ~/.local/share/man/man1/longwriter.1`.
    Man,
    /// Import a markdown file (a longwriter export, or any text) as a new session.
    Import(sessions::ImportArgs),
}

pub fn main() -> ExitCode {
    // `COMPLETE=bash longwriter …`: the shell asks for candidates; answer and exit.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Models(_) | Command::Sessions(_) | Command::Runs(_) | Command::Config(_) | Command::Completions { .. } | Command::Man)) {
        quiet_on_closed_pipe();
    }
    init_logging(cli.command.is_none());
    // The config command reports a broken file instead of failing on it.
    let result = match &cli.command {
        Some(Command::Config(c)) => config::run(c, &cli),
        // Neither needs settings: they describe the command line itself.
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "longwriter", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Man) => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut std::io::stdout()).map_err(Into::into),
        _ => Settings::load().map_err(Into::into).and_then(|cfg| dispatch(cli, &cfg)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `longwriter models list | head` ends quietly, as Unix tools do. Rust ignores SIGPIPE, so
/// a closed pipe made `println!` panic; the commands that only print and exit take the
/// default action back and end at the first write to a closed pipe. The rest keep
/// ignoring it: the studio, the servers and training must outlive a reader that goes away,
/// and `write` keeps saving its session to the end.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called once, before any thread is started; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether to colour a stream: a terminal, unless NO_COLOR is set (non-empty);
/// CLICOLOR_FORCE (non-empty, not 0) colours any stream.
pub(crate) fn color(stream: &impl std::io::IsTerminal) -> bool {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0");
    if set("CLICOLOR_FORCE") {
        return true;
    }
    std::env::var_os("NO_COLOR").is_none_or(|x| x.is_empty()) && stream.is_terminal()
}

/// `v` as one line of JSON for stdout. JSON leaves C1 controls and bidi overrides raw, and a
/// terminal may act on them (U+009B is CSI); text longwriter did not write (titles, drafts,
/// model descriptions) can hold them, so they are escaped as `\uXXXX`, which any JSON
/// reader decodes to the same string.
pub(crate) fn json_line(v: &impl serde::Serialize) -> anyhow::Result<String> {
    let s = serde_json::to_string(v)?;
    let risky = |c: char| matches!(c, '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    Ok(s.chars().fold(String::with_capacity(s.len()), |mut out, c| {
        if risky(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
        out
    }))
}

/// Whether `flag` (as `--flag VALUE` or `--flag=VALUE`) was typed on the command line,
/// as opposed to coming from the environment.
pub(crate) fn given_on_command_line(flag: &str) -> bool {
    std::env::args_os().any(|a| a.to_str().is_some_and(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('='))))
}

fn dispatch(cli: Cli, cfg: &Settings) -> anyhow::Result<()> {
    // A kernel path asked for by LONGWRITER_CPU_ISA that does not exist here is an error,
    // not a silent fallback.
    crate::engine::cpu::kernels::requested().map_err(anyhow::Error::msg)?;
    crate::engine::KvType::requested().map_err(anyhow::Error::msg)?;
    if cli.server.api_key.is_some() && given_on_command_line("--api-key") {
        eprintln!("warning: a key given with --api-key is visible to every user of this machine (ps); set LONGWRITER_API_KEY instead");
    }
    if let Some(n) = cli.threads.or(cfg.threads) {
        // candle's CPU kernels size their pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    let trains = matches!(&cli.command, Some(Command::Train(_))) || matches!(&cli.command, Some(Command::Bench(a)) if a.train);
    if trains && std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // The loss pass alternates candle's element-wise ops (run on candle's own spinning
        // pool) with GEMMs (on rayon's): a worker spinning 25,000 rounds after each op took
        // a core from the next GEMM (10% of the loss pass's samples on 2 cores), and 1,000
        // rounds made the pass about 10% faster (docs/training-speed.md). Set before any thread
        // starts, like the variable above.
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000");
    }
    let device = cli.device.clone().or_else(|| cfg.device.clone()).unwrap_or_else(|| "cpu".into());
    // `longwriter -m X <command>`: the model reaches every command that writes with one,
    // and is refused where none applies, never silently ignored.
    let mut cli = cli;
    if let (Some(m), Some(cmd)) = (cli.model.clone(), cli.command.as_mut()) {
        let slot = match cmd {
            Command::Write(a) => Some(&mut a.model),
            Command::Bench(a) => Some(&mut a.model),
            Command::Eval(eval::EvalCmd::Longbench(a)) => Some(&mut a.model),
            _ => None,
        };
        match slot {
            Some(own @ None) => *own = Some(m),
            Some(Some(own)) if *own != m => anyhow::bail!("two models: -m {m} before the command and --model {own} after it"),
            Some(Some(_)) => {}
            None => anyhow::bail!("-m/--model before the command is for the studio, write, bench and eval longbench; this command takes no model"),
        }
    }
    match cli.command {
        Some(Command::Write(a)) => write::run(a, &device, cfg),
        Some(Command::Models(c)) => models::run(c),
        Some(Command::Bench(a)) => bench::run(a, &device),
        Some(Command::Score(a)) => score::run(a, &device),
        Some(Command::RewardServe(a)) => reward_serve::run(a, &device),
        Some(Command::Sessions(c)) => sessions::run(c),
        Some(Command::Export(a)) => sessions::export(a),
        Some(Command::Import(a)) => sessions::import(a),
        Some(Command::Train(a)) => train::run(a, &device),
        Some(Command::Runs(c)) => train::runs(c),
        Some(Command::Eval(c)) => eval::run(c, &device),
        Some(Command::Config(_) | Command::Completions { .. } | Command::Man) => unreachable!("handled before settings load"),
        None => studio(&cli, cfg, device),
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
    // Errors can quote a server's reply or a file's contents: never raw to the terminal.
    crate::text::strip_controls(&s.replace('\n', " ")).into_owned()
}

/// Logs go to stderr for headless commands and to a file while the TUI owns the screen.
fn init_logging(to_file: bool) {
    let filter = || tracing_subscriber::EnvFilter::try_from_env("LONGWRITER_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    if to_file {
        let dir = crate::paths::logs_dir();
        let file = std::fs::create_dir_all(&dir).and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(dir.join("longwriter.log")));
        if let Ok(file) = file {
            let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_ansi(false).with_writer(std::sync::Mutex::new(file)).try_init();
        }
        // Without a log file, logging stays off rather than writing over the TUI.
        return;
    }
    let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).try_init();
}
