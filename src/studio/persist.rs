//! The studio's state to and from a saved session (the SQLite store's `Session`).

use super::action::{Phase, SaveState};
use super::app::{new_prompt, App};
use crate::write::WriteMode;

impl App {
    /// Everything a session stores, as of now.
    pub fn snapshot(&self) -> crate::sessions::Session {
        let prompt = self.prompt.lines().join("\n");
        let rewards = serde_json::json!({
            "length": self.length_reward(),
            "format": self.format_note,
            "repeated_share": self.repetition.share(),
            "words": self.draft.words(),
        });
        crate::sessions::Session {
            id: self.session_id.unwrap_or(0),
            updated: crate::sessions::now(),
            title: crate::sessions::title_of(&prompt),
            model: self.model.clone(),
            template: self.template.label().into(),
            settings: crate::sessions::settings_of(&self.sampler, self.max_tokens, &self.target),
            prompt,
            trace: self.think.text(),
            draft: self.draft.text(),
            stats: serde_json::to_value(&self.stats).unwrap_or_default(),
            rewards,
            state: match &self.phase {
                Phase::Done(s) => format!("done: {}", s.describe()),
                Phase::Error(e) => format!("error: {e}"),
                Phase::Generating => "generating".into(),
                _ => "idle".into(),
            },
            ..Default::default()
        }
    }

    /// Restores a saved session into the panes.
    pub fn load_session(&mut self, s: &crate::sessions::Session) {
        self.session_id = Some(s.id);
        self.prompt = new_prompt(s.prompt.lines().map(String::from).collect());
        self.think.clear();
        self.think.push(&s.trace);
        self.draft.clear();
        self.draft.push(&s.draft);
        self.repetition = crate::reward::RepetitionCounter::new(self.reward_cfg.ngram);
        self.repetition.push(&s.draft);
        self.target = crate::reward::extract_target(&s.prompt);
        if let Some(t) = WriteMode::parse(&s.template) {
            self.template = t;
        }
        self.save = SaveState::Saved;
        self.saved_words = Some(self.draft.words());
        self.note = Some(format!("reopened session {} ({})", s.id, s.state));
    }
}
