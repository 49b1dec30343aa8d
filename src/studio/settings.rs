//! The settings dialog: sampling parameters and the length-target override, edited as
//! text fields and validated as a whole when applied.

use crate::engine::SamplerConfig;
use crate::reward::TargetRange;
use crossterm::event::{KeyCode, KeyEvent};

pub const FIELDS: [&str; 8] = ["temperature", "top-p", "top-k (0 = off)", "repetition penalty", "DRY multiplier (0 = off)", "max new tokens", "seed", "target words (lo,hi or auto)"];

#[derive(Debug, Clone, PartialEq)]
pub struct SettingsDialog {
    pub values: Vec<String>,
    pub selected: usize,
    pub error: Option<String>,
}

/// What the dialog asks of the app after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogResult {
    Open,
    Cancel,
    Apply { sampler: SamplerConfig, max_tokens: usize, target: Option<TargetRange> },
}

impl SettingsDialog {
    pub fn new(s: &SamplerConfig, max_tokens: usize, target_override: Option<TargetRange>) -> Self {
        let values = vec![
            s.temperature.to_string(),
            s.top_p.to_string(),
            s.top_k.to_string(),
            s.repetition_penalty.to_string(),
            s.dry_multiplier.to_string(),
            max_tokens.to_string(),
            s.seed.to_string(),
            target_override.map(|t| format!("{},{}", t.lo, t.hi)).unwrap_or_else(|| "auto".into()),
        ];
        Self { values, selected: 0, error: None }
    }

    pub fn key(&mut self, k: KeyEvent, base: &SamplerConfig) -> DialogResult {
        match k.code {
            KeyCode::Esc => return DialogResult::Cancel,
            KeyCode::Up | KeyCode::BackTab => self.selected = (self.selected + FIELDS.len() - 1) % FIELDS.len(),
            KeyCode::Down | KeyCode::Tab => self.selected = (self.selected + 1) % FIELDS.len(),
            KeyCode::Backspace => {
                self.values[self.selected].pop();
            }
            KeyCode::Char(c) if !c.is_control() => self.values[self.selected].push(c),
            KeyCode::Enter => match self.parse(base) {
                Ok(r) => return r,
                Err(e) => self.error = Some(e),
            },
            _ => {}
        }
        DialogResult::Open
    }

    fn parse(&self, base: &SamplerConfig) -> Result<DialogResult, String> {
        fn num<T: std::str::FromStr>(v: &str, name: &str) -> Result<T, String> {
            v.trim().parse().map_err(|_| format!("{name}: '{v}' is not a valid number"))
        }
        let v = &self.values;
        let sampler = SamplerConfig {
            temperature: num(&v[0], FIELDS[0])?,
            top_p: num(&v[1], FIELDS[1])?,
            top_k: num(&v[2], FIELDS[2])?,
            repetition_penalty: num(&v[3], FIELDS[3])?,
            dry_multiplier: num(&v[4], FIELDS[4])?,
            seed: num(&v[6], FIELDS[6])?,
            ..base.clone()
        };
        sampler.validate()?;
        let max_tokens: usize = num(&v[5], FIELDS[5])?;
        if max_tokens == 0 {
            return Err("max new tokens must be at least 1".into());
        }
        let t = v[7].trim();
        let target = if t.is_empty() || t.eq_ignore_ascii_case("auto") { None } else { Some(TargetRange::parse(t)?) };
        Ok(DialogResult::Apply { sampler, max_tokens, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn k(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn edit_validate_apply() {
        let base = SamplerConfig::default();
        let mut d = SettingsDialog::new(&base, 512, None);
        for _ in 0..3 {
            d.key(k(KeyCode::Backspace), &base);
        }
        for c in "0.9".chars() {
            d.key(k(KeyCode::Char(c)), &base);
        }
        // Jump to the target field (up from the first wraps to the last) and set it.
        d.key(k(KeyCode::Up), &base);
        for _ in 0..4 {
            d.key(k(KeyCode::Backspace), &base);
        }
        for c in "900,800".chars() {
            d.key(k(KeyCode::Char(c)), &base);
        }
        assert_eq!(d.key(k(KeyCode::Enter), &base), DialogResult::Open);
        assert!(d.error.as_deref().unwrap().contains("lower bound above upper bound"));
        for _ in 0..7 {
            d.key(k(KeyCode::Backspace), &base);
        }
        for c in "800,1200".chars() {
            d.key(k(KeyCode::Char(c)), &base);
        }
        match d.key(k(KeyCode::Enter), &base) {
            DialogResult::Apply { sampler, max_tokens, target } => {
                assert_eq!(sampler.temperature, 0.9);
                assert_eq!(max_tokens, 512);
                assert_eq!(target, Some(TargetRange { lo: 800, hi: 1200 }));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.key(k(KeyCode::Esc), &base), DialogResult::Cancel);
    }

    #[test]
    fn bad_values_are_refused() {
        let base = SamplerConfig::default();
        let mut d = SettingsDialog::new(&base, 512, None);
        d.values[1] = "1.5".into();
        d.key(k(KeyCode::Enter), &base);
        assert!(d.error.as_deref().unwrap().contains("top-p"));
        d.values[1] = "0.9".into();
        d.values[5] = "lots".into();
        d.key(k(KeyCode::Enter), &base);
        assert!(d.error.as_deref().unwrap().contains("max new tokens: 'lots' is not a valid number"));
        d.values[5] = "512".into();
        d.values[4] = "-1".into();
        d.key(k(KeyCode::Enter), &base);
        assert!(d.error.as_deref().unwrap().contains("the DRY multiplier must be ≥ 0"), "{:?}", d.error);
    }

    #[test]
    fn the_dry_multiplier_is_set_in_the_dialog() {
        let base = SamplerConfig::default();
        let mut d = SettingsDialog::new(&base, 512, None);
        assert_eq!(d.values[4], "0", "off by default");
        d.values[4] = "0.8".into();
        match d.key(k(KeyCode::Enter), &base) {
            DialogResult::Apply { sampler, .. } => assert_eq!(sampler.dry_multiplier, 0.8),
            other => panic!("{other:?}"),
        }
    }
}
