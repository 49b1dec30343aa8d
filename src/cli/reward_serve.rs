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
    /// Bearer token clients must send (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "LONGWRITER_REWARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
    #[command(flatten)]
    pub rewards: RewardArgs,
}

pub fn run(a: ServeArgs, device: &str) -> Result<()> {
    check_bind(a.addr, a.token.as_deref())?;
    if !a.failure_reward.is_finite() {
        anyhow::bail!("--failure-reward must be a finite number");
    }
    let scorer = a.rewards.scorer(device)?;
    let cfg = ServeConfig {
        token: a.token.clone(),
        max_body: a.max_body_mib.max(1) << 20,
        closed_by_stop: a.stopped,
        failure_reward: a.failure_reward,
        combine: a.combine,
        max_concurrent: a.max_concurrent.max(1),
        queue_timeout: std::time::Duration::from_secs(a.read_timeout.max(1)),
        read_timeout: std::time::Duration::from_secs(a.read_timeout.max(1)),
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
