//! The studio's view of an AgentWrite run: the plan with its current step, the trace
//! notes, and where each step began in the draft so a failed step can be retried.

use crate::write::agentwrite::{AgentSpec, PlanStep};
use crate::write::WriteMode;

#[derive(Debug, Default, Clone)]
pub struct AgentView {
    pub plan: Option<Vec<PlanStep>>,
    /// The step being written (or the last one started).
    pub step: Option<usize>,
    /// Draft length (bytes of its text) when each started step began.
    marks: Vec<usize>,
    pub notes: Vec<String>,
}

impl AgentView {
    pub fn on_step(&mut self, index: usize, draft_len: usize) {
        self.step = Some(index);
        self.marks.truncate(index);
        self.marks.resize(index, draft_len);
        self.marks.push(draft_len);
    }

    /// A run that picks up at the current step with the same plan: the text before the
    /// step is kept as written, and the step's own text is continued. None without a plan.
    pub fn resume(&self, draft: &str, base: &AgentSpec) -> Option<AgentSpec> {
        let plan = self.plan.clone()?;
        let k = self.step.unwrap_or(0);
        let mark = self.marks.get(k).copied().unwrap_or(draft.len()).min(draft.len());
        let mark = (0..=mark).rev().find(|&i| draft.is_char_boundary(i)).unwrap_or(0);
        Some(AgentSpec { plan, start_step: k, written: draft[..mark].to_string(), partial: draft[mark..].to_string(), ..base.clone() })
    }

    /// Rows for the trace pane: the plan, the current step marked, then the notes.
    pub fn rows(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        if let Some(plan) = &self.plan {
            out.push((format!("Plan · {} steps · {} words", plan.len(), plan.iter().map(|s| s.words).sum::<usize>()), false));
            for (i, s) in plan.iter().enumerate() {
                let current = self.step == Some(i);
                let mark = if current { "▶" } else if self.step.is_some_and(|k| i < k) { "✓" } else { " " };
                out.push((format!("{mark} {}. {} ({} words)", i + 1, s.point, s.words), current));
            }
        }
        out.extend(self.notes.iter().map(|n| (format!("· {n}"), false)));
        out
    }
}

impl super::app::App {
    /// AgentWrite's settings for the current request: the whole text's length target.
    pub(super) fn agent_spec(&self) -> AgentSpec {
        AgentSpec { target_words: self.target.map(|t| t.mid()), retries: 1, ..Default::default() }
    }

    /// The mode the current request is written in: the chosen one, with `auto` resolved
    /// by the request's target.
    pub(crate) fn run_mode(&self) -> WriteMode {
        self.template.resolve(self.agent_spec().target_words)
    }

    /// The mode as the status bar and prompt title name it: `auto` with what it picked,
    /// once a request has been written with it.
    pub(crate) fn mode_label(&self) -> String {
        match self.template {
            WriteMode::Auto if self.started.is_some() => format!("auto: {}", self.run_mode().label()),
            m => m.label().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_keeps_earlier_steps_and_continues_the_failed_one() {
        let mut v = AgentView { plan: Some(vec![PlanStep { point: "A".into(), words: 300 }, PlanStep { point: "B".into(), words: 300 }]), ..Default::default() };
        v.on_step(0, 0);
        v.on_step(1, 13);
        let draft = "First part.\n\nSecond, half";
        let r = v.resume(draft, &AgentSpec { target_words: Some(600), ..Default::default() }).unwrap();
        assert_eq!((r.start_step, r.written.as_str(), r.partial.as_str(), r.target_words), (1, "First part.\n\n", "Second, half", Some(600)));
        let rows = v.rows();
        assert_eq!(rows[1], ("✓ 1. A (300 words)".to_string(), false));
        assert_eq!(rows[2], ("▶ 2. B (300 words)".to_string(), true));
        assert!(AgentView::default().resume(draft, &AgentSpec::default()).is_none());
    }
}
