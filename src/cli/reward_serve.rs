use super::rewards::RewardArgs;
use crate::serve::{check_bind, Combine, ServeConfig};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
    /// Bearer token clients must send (`Authorization: Bearer TOKEN`). Prefer
    /// --token-file or the environment variable: a command line shows in `ps`.
    #[arg(long, env = "LONGWRITER_REWARD_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the bearer token from this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Largest request body accepted, in MiB (larger ones get 413).
    #[arg(long, default_value_t = 16)]
    pub max_body_mib: usize,
    /// How /get_reward combines the rewards of a query into one number.
    #[arg(long, value_enum, default_value_t = Combine::Mean)]
    pub combine: Combine,
    /// The reward given for anything that could not be scored.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub failure_reward: f64,
    /// Responses end on a stop string, so a missing </answer> was swallowed.
    #[arg(long)]
    pub stopped: bool,
    /// Requests scored at once; more wait up to --read-timeout, then get 503.
    #[arg(long, default_value_t = 32)]
    pub max_concurrent: usize,
    /// Seconds a client may take to send its body (408 past it), and a request may wait
    /// for a scoring slot.
    #[arg(long, default_value_t = 30)]
    pub read_timeout: u64,
    /// Connections open at once; more wait until one closes.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Queries (or /score items) one request may carry (413 past it).
    #[arg(long, default_value_t = 4096)]
    pub max_queries: usize,
    /// Largest query, prompt or response, in KiB (413 past it).
    #[arg(long, default_value_t = 1024)]
    pub max_query_kib: usize,
    #[command(flatten)]
    pub rewards: RewardArgs,
}

/// The token from --token-file, or --token / the environment (with a warning when it was
/// typed on the command line, where other users can read it).
fn token(a: &ServeArgs) -> Result<Option<String>> {
    if let Some(f) = &a.token_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading the token file {}", f.display()))?;
        let t = text.lines().next().unwrap_or("").trim().to_string();
        if t.is_empty() {
            anyhow::bail!("the token file {} is empty", f.display());
        }
        return Ok(Some(t));
    }
    if a.token.is_some() && super::given_on_command_line("--token") {
        eprintln!("warning: a token given with --token is visible to every user of this machine (ps); use --token-file or LONGWRITER_REWARD_TOKEN");
    }
    Ok(a.token.clone())
}

pub fn run(a: ServeArgs, device: &str) -> Result<()> {
    let token = token(&a)?;
    check_bind(a.addr, token.as_deref())?;
    if !a.failure_reward.is_finite() {
        anyhow::bail!("--failure-reward must be a finite number");
    }
    let scorer = a.rewards.scorer(device)?;
    let cfg = ServeConfig {
        token,
        max_body: a.max_body_mib.max(1) << 20,
        closed_by_stop: a.stopped,
        failure_reward: a.failure_reward,
        combine: a.combine,
        max_concurrent: a.max_concurrent.max(1),
        queue_timeout: std::time::Duration::from_secs(a.read_timeout.max(1)),
        read_timeout: std::time::Duration::from_secs(a.read_timeout.max(1)),
        max_connections: a.max_connections.max(1),
        max_queries: a.max_queries.max(1),
        max_query_bytes: a.max_query_kib.max(1) << 10,
        ..ServeConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.addr).await.with_context(|| format!("cannot listen on {}", a.addr))?;
        let local = listener.local_addr()?;
        let quality = scorer.quality.as_ref().map_or("none".to_string(), |q| format!("{} [{}]", q.name(), q.kind().label()));
        eprintln!("reward server on http://{local}  (POST /get_reward, POST /score, GET /health; quality: {quality}; semantic: {})", scorer.embedder.is_some());
        crate::serve::serve(listener, scorer, cfg, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
    })
}
