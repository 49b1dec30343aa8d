//! Writing-quality rewards. The paper's Qwen2.5-72B Bradley–Terry reward model is not
//! released, so every scorer here is a stand-in and says which kind it is:
//! a reward model with a scalar head ([`ScalarHeadRm`]), an LLM judge with WritingBench-style
//! criteria ([`Judge`]), or a cheap CPU proxy ([`FluencyProxy`]) that is labelled "proxy"
//! wherever it is shown.

mod judge;
mod proxy;
mod rm;

pub use judge::{clip_middle, parse_judge_reply, Judge, JudgeReply, CRITERIA};
pub use proxy::{fluency, mattr, Fluency, FluencyProxy, FLUENCY_TOKENS, MATTR_WINDOW};
pub use rm::{ScalarHeadRm, SCORE_HEAD};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("reward model: {0}")]
    Model(String),
    #[error("judge: {0}")]
    Judge(String),
    #[error("the answer is empty")]
    EmptyAnswer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QualityKind {
    RewardModel,
    Judge,
    Proxy,
}

impl QualityKind {
    /// How the studio and the CLI label the score.
    pub fn label(self) -> &'static str {
        match self {
            QualityKind::RewardModel => "reward model",
            QualityKind::Judge => "judge",
            QualityKind::Proxy => "proxy",
        }
    }
}

/// One named part of a quality score (a judge criterion, a proxy component).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityPart {
    pub name: String,
    pub value: f64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityScore {
    /// The reward. Its scale depends on the scorer; GRPO only sees its in-group z-score.
    pub value: f64,
    pub kind: QualityKind,
    pub scorer: String,
    pub parts: Vec<QualityPart>,
    /// Something the user should know (a fallback was used, the answer was cut, …).
    pub note: Option<String>,
}

impl QualityScore {
    /// The score on [0, 1], so it can be averaged with the other rewards: a reward model's
    /// logit through a sigmoid, a judge's 1–10 as (v − 1) / 9, a proxy as it is.
    pub fn unit(&self) -> f64 {
        let u = match self.kind {
            QualityKind::RewardModel => 1.0 / (1.0 + (-self.value).exp()),
            QualityKind::Judge => (self.value - 1.0) / 9.0,
            QualityKind::Proxy => self.value,
        };
        u.clamp(0.0, 1.0)
    }
}

/// Scores the writing quality of an answer to a request.
pub trait QualityScorer: Send + Sync {
    fn name(&self) -> String;
    fn kind(&self) -> QualityKind;
    fn score(&self, request: &str, answer: &str) -> Result<QualityScore, QualityError>;
}
