//! The HTTP reward server: longwriter's rewards for established RL trainers.
//!
//! - `POST /get_reward` speaks OpenRLHF's remote reward-model protocol (`--remote_rm_url`):
//!   `{"query": [prompt+response, …], "prompts": [...]?, "labels": [...]?}` →
//!   `{"rewards": [...], "scores": [...], "extra_logs": {"length", "format", "quality"}}`.
//! - `POST /score` returns every reward with its breakdown.
//! - `GET /health`.
//!
//! Scoring runs on tokio's blocking pool, so a slow judge never stalls the runtime.
//!
//! What a client can hold is bounded, outermost first:
//! - connections: at most `max_connections` open (the rest wait in the listen backlog);
//!   headers must arrive within `header_timeout`; a connection idle for `idle_timeout`
//!   is closed (after the request it may be serving);
//! - the token is checked before anything else, so a client without it never takes a
//!   scoring slot or has its body read; only `application/json` bodies are accepted (a web
//!   page cannot post a "simple" request to a loopback server);
//! - scoring slots (`max_concurrent`, 503 past `queue_timeout`), the whole body within
//!   `read_timeout` (408), the body size (413), the queries per request and the bytes per
//!   query (413, naming the limit).
//!
//! Binding beyond loopback requires a bearer token.

mod conn;

use crate::reward::{group_advantages, split_query, FullScore, Scorer, TargetRange};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// How `/get_reward` turns the rewards of one query into the scalar a trainer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Combine {
    /// The mean of the rewards that apply (length when a target is known, format, quality
    /// on [0, 1]). The trainer normalises inside its groups.
    #[default]
    Mean,
    /// The paper's advantage-level combination, done here: queries with the same prompt in
    /// one request form a group; each reward is z-scored inside it and the z-scores averaged.
    Group,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub token: Option<String>,
    pub max_body: usize,
    /// Responses ended on a stop string, so a missing `</answer>` was swallowed.
    pub closed_by_stop: bool,
    /// Given for any reward that could not be computed (and never NaN).
    pub failure_reward: f64,
    pub combine: Combine,
    /// Requests scored at once; more wait up to `queue_timeout`, then get 503.
    pub max_concurrent: usize,
    pub queue_timeout: std::time::Duration,
    /// Longest wait for a request's body (408 past it).
    pub read_timeout: std::time::Duration,
    /// Longest a client may take to send a request's headers; the connection is closed.
    pub header_timeout: std::time::Duration,
    /// A connection that has sent and received nothing for this long is closed (a
    /// request being scored is answered first).
    pub idle_timeout: std::time::Duration,
    /// Connections open at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Queries (`/get_reward`) or items (`/score`) one request may carry (413 past it).
    pub max_queries: usize,
    /// Bytes one query, prompt or response may have (413 past it).
    pub max_query_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            token: None,
            max_body: 16 << 20,
            closed_by_stop: false,
            failure_reward: -1.0,
            combine: Combine::Mean,
            max_concurrent: 32,
            queue_timeout: std::time::Duration::from_secs(30),
            read_timeout: std::time::Duration::from_secs(30),
            header_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(30),
            max_connections: 256,
            max_queries: 4096,
            max_query_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0} without a token: anyone who can reach it could use this machine's compute. Hint: pass --token (or LONGWRITER_REWARD_TOKEN), or bind 127.0.0.1")]
    NeedsToken(SocketAddr),
}

/// Binding anything but loopback needs a token.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        return Err(ServeError::NeedsToken(addr));
    }
    Ok(())
}

struct AppState {
    scorer: Scorer,
    cfg: ServeConfig,
}

pub fn router(scorer: Scorer, cfg: ServeConfig) -> Router {
    let limit = cfg.max_body;
    let gate = Gate { slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent.max(1))), max: cfg.max_concurrent.max(1), queue: cfg.queue_timeout, read: cfg.read_timeout, max_body: limit };
    let token = Arc::new(cfg.token.clone().filter(|t| !t.is_empty()));
    let state = Arc::new(AppState { scorer, cfg });
    // Layers run outermost last-added: the token and content type are checked first.
    Router::new()
        .route("/health", get(health))
        .route("/get_reward", post(get_reward))
        .route("/score", post(score))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(gate, admit))
        .layer(axum::middleware::from_fn_with_state(limit, reject_announced_oversize))
        .layer(axum::middleware::from_fn_with_state(token, guard))
        .with_state(state)
}

/// The outermost check: a request to anything but `/health` must carry the token (401)
/// and, when it posts, a JSON body (415), before it may wait for a slot or send a byte
/// of its body.
async fn guard(State(token): State<Arc<Option<String>>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    if !token_ok(token.as_deref(), req.headers()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    if req.method() == Method::POST {
        let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("the body must be JSON sent as Content-Type: application/json (got {:?})", crate::text::strip_controls(ct)));
        }
    }
    next.run(req).await
}

/// Bounds the work one server takes on: scoring slots, and the time a body may take.
#[derive(Clone)]
struct Gate {
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
    queue: std::time::Duration,
    read: std::time::Duration,
    max_body: usize,
}

/// Takes a scoring slot (waiting up to the timeout, then 503) and reads the whole body
/// within the timeout (408), so slow or idle clients cannot hold slots or memory.
async fn admit(State(g): State<Gate>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let Ok(Ok(_slot)) = tokio::time::timeout(g.queue, g.slots.clone().acquire_owned()).await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("busy: {} requests are being scored and none finished within {} s; retry later", g.max, g.queue.as_secs_f64()));
    };
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(g.read, axum::body::to_bytes(body, g.max_body)).await {
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {} s", g.read.as_secs_f64())),
        Ok(Err(_)) => return error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over the {}-byte limit, or broken off", g.max_body)),
        Ok(Ok(b)) => b,
    };
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Refuses a body whose announced length is over the limit before reading any of it;
/// bodies without a length are cut off by `DefaultBodyLimit` as they stream.
async fn reject_announced_oversize(State(limit): State<usize>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let announced = req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over the {limit}-byte limit"));
    }
    next.run(req).await
}

pub use conn::serve;

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

/// Whether the request carries the token (always, when none is set).
fn token_ok(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return true };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison, so the token cannot be guessed byte by byte from timings.
    given.is_some_and(|g| g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))
}

/// Open to all, so a load balancer can probe it; the scorer's name (which may hold a
/// judge's URL) only goes to a caller with the token.
async fn health(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Json<Value> {
    let s = &state.scorer;
    let full = state.cfg.token.as_deref().is_some_and(|t| !t.is_empty()) && token_ok(state.cfg.token.as_deref(), &headers);
    let open = state.cfg.token.as_deref().is_none_or(str::is_empty);
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "quality": s.quality.as_ref().map(|q| if full || (open && q.kind() != crate::reward::quality::QualityKind::Judge) { json!({"scorer": q.name(), "kind": q.kind().label()}) } else { json!({"kind": q.kind().label()}) }),
        "semantic_repetition": s.embedder.is_some(),
        "combine": format!("{:?}", state.cfg.combine).to_lowercase(),
    }))
}

#[derive(Deserialize)]
struct RewardRequest {
    query: Vec<String>,
    #[serde(default)]
    prompts: Option<Vec<Option<String>>>,
    #[serde(default)]
    labels: Option<Vec<Value>>,
}

/// A label that names a target range: `[lo, hi]`, `"lo,hi"` or `{"target": [lo, hi]}`.
fn label_target(v: &Value) -> Option<TargetRange> {
    let pair = |a: &Value| -> Option<TargetRange> {
        let a = a.as_array()?;
        let (lo, hi) = (a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize);
        (lo <= hi).then_some(TargetRange { lo, hi })
    };
    match v {
        Value::Array(_) => pair(v),
        Value::String(s) => TargetRange::parse(s).ok(),
        Value::Object(o) => o.get("target").or_else(|| o.get("range")).and_then(pair),
        _ => None,
    }
}

/// Scores a batch on the blocking pool; a panic in one item costs only that item.
async fn score_batch(state: Arc<AppState>, items: Vec<(String, String, Option<TargetRange>)>) -> Vec<Option<FullScore>> {
    let closed = state.cfg.closed_by_stop;
    let n = items.len();
    let task = tokio::task::spawn_blocking(move || {
        items
            .into_iter()
            .map(|(req, out, t)| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.scorer.score(&req, &out, t, closed))).ok())
            .collect::<Vec<_>>()
    });
    // Whatever happens, one entry per item, so replies stay aligned with the request.
    task.await.unwrap_or_else(|_| vec![None; n])
}

fn finite(x: f64, fallback: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        fallback
    }
}

/// 413 when a request carries more queries than allowed, or one longer than allowed.
fn check_sizes<'a>(cfg: &ServeConfig, (what, whats): (&str, &str), texts: impl ExactSizeIterator<Item = &'a str>) -> Result<(), Response> {
    if texts.len() > cfg.max_queries {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, format!("{} {whats} in one request; the limit is {} (split the batch)", texts.len(), cfg.max_queries)));
    }
    for (i, t) in texts.enumerate() {
        if t.len() > cfg.max_query_bytes {
            return Err(error(StatusCode::PAYLOAD_TOO_LARGE, format!("{what} {i} has {} bytes; the limit is {} bytes per {what}", t.len(), cfg.max_query_bytes)));
        }
    }
    Ok(())
}

async fn get_reward(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: RewardRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    drop(body);
    if let Err(r) = check_sizes(&state.cfg, ("query", "queries"), req.query.iter().map(String::as_str)) {
        return r;
    }
    if let Some(p) = req.prompts.as_ref() {
        if let Err(r) = check_sizes(&state.cfg, ("prompt", "prompts"), p.iter().map(|p| p.as_deref().unwrap_or(""))) {
            return r;
        }
    }
    let n = req.query.len();
    // A label that is there must name a target; one that does not is the caller's mistake,
    // not something to score without a length reward.
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        match req.labels.as_ref().and_then(|l| l.get(i)).filter(|v| !v.is_null()) {
            None => targets.push(None),
            Some(v) => match label_target(v) {
                Some(t) => targets.push(Some(t)),
                None => return error(StatusCode::BAD_REQUEST, format!("labels[{i}] must name a target length: [lo, hi], \"lo,hi\" or {{\"target\": [lo, hi]}} with lo ≤ hi")),
            },
        }
    }
    let prompt_at = |i: usize| req.prompts.as_ref().and_then(|p| p.get(i).cloned().flatten());
    let mut groups = Vec::with_capacity(n);
    let items: Vec<_> = (0..n)
        .map(|i| {
            let p = prompt_at(i);
            let (request, response) = split_query(&req.query[i], p.as_deref());
            groups.push(p.clone().unwrap_or_else(|| request.to_string()));
            (request.to_string(), response.to_string(), targets[i])
        })
        .collect();
    drop(req);
    let results = score_batch(state.clone(), items).await;
    let combine = state.cfg.combine;
    let fail = state.cfg.failure_reward;
    let has_quality = state.scorer.quality.is_some();
    // Combining is linear in the queries, but a batch can be large: off the runtime too.
    let reply = tokio::task::spawn_blocking(move || combine_rewards(&results, &groups, combine, fail, has_quality)).await;
    match reply {
        Ok(v) => Json(v).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "combining the rewards failed"),
    }
}

/// `/get_reward`'s reply from the scores: per query, length, format and quality on [0, 1]
/// (None where a reward does not apply), combined as `combine` says.
fn combine_rewards(results: &[Option<FullScore>], groups: &[String], combine: Combine, fail: f64, has_quality: bool) -> Value {
    let n = results.len();
    let parts: Vec<[Option<f64>; 3]> = results
        .iter()
        .map(|r| match r {
            Some(s) => [
                s.rewards.length,
                Some(s.rewards.format),
                has_quality.then(|| s.quality.as_ref().map_or(fail, |q| q.unit())),
            ],
            None => [Some(fail), Some(fail), has_quality.then_some(fail)],
        })
        .collect();
    let rewards: Vec<f64> = match combine {
        Combine::Mean => parts
            .iter()
            .map(|p| {
                let v: Vec<f64> = p.iter().flatten().copied().collect();
                finite(v.iter().sum::<f64>() / v.len().max(1) as f64, fail)
            })
            .collect(),
        Combine::Group => {
            // One pass to gather each prompt's members, in order of first appearance.
            let mut index: HashMap<&str, usize> = HashMap::new();
            let mut members: Vec<Vec<usize>> = Vec::new();
            for (i, g) in groups.iter().enumerate() {
                let k = *index.entry(g.as_str()).or_insert_with(|| {
                    members.push(Vec::new());
                    members.len() - 1
                });
                members[k].push(i);
            }
            let mut out = vec![0.0; n];
            for idx in &members {
                // A reward joins the average only if it applies to every member of the group.
                let per_reward: Vec<Vec<f64>> = (0..3).filter_map(|k| idx.iter().map(|&i| parts[i][k]).collect::<Option<Vec<f64>>>()).collect();
                for (&i, a) in idx.iter().zip(group_advantages(&per_reward)) {
                    out[i] = finite(a, fail);
                }
            }
            out
        }
    };
    let col = |k: usize, none: f64| -> Vec<f64> { parts.iter().map(|p| finite(p[k].unwrap_or(none), fail)).collect() };
    json!({
        "rewards": rewards,
        "scores": rewards,
        "extra_logs": { "length": col(0, 0.0), "format": col(1, fail), "quality": col(2, 0.0) },
    })
}

#[derive(Deserialize)]
struct ScoreItem {
    #[serde(default)]
    prompt: String,
    response: String,
    #[serde(default)]
    target: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScoreRequest {
    Many { items: Vec<ScoreItem> },
    One(ScoreItem),
}

async fn score(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let items = match parse::<ScoreRequest>(&body) {
        Ok(ScoreRequest::Many { items }) => items,
        Ok(ScoreRequest::One(item)) => vec![item],
        Err(r) => return r,
    };
    drop(body);
    if let Err(r) = check_sizes(&state.cfg, ("item", "items"), items.iter().map(|it| if it.response.len() >= it.prompt.len() { it.response.as_str() } else { it.prompt.as_str() })) {
        return r;
    }
    let mut bad = None;
    let work: Vec<_> = items
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            let target = it.target.as_ref().and_then(|t| {
                let got = label_target(t);
                if got.is_none() {
                    bad.get_or_insert(i);
                }
                got
            });
            (it.prompt, it.response, target)
        })
        .collect();
    if let Some(i) = bad {
        return error(StatusCode::BAD_REQUEST, format!("items[{i}].target must be [lo, hi] with lo ≤ hi"));
    }
    let results = score_batch(state, work).await;
    let out: Vec<Value> = results.into_iter().map(|r| r.map_or_else(|| json!({"error": "scoring failed"}), |s| serde_json::to_value(s).unwrap_or(Value::Null))).collect();
    Json(json!({ "results": out })).into_response()
}
