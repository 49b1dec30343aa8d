//! Colour themes: `themes/*.toml` shipped in the binary, plus user themes in
//! `<config dir>/themes/`. Every colour the studio draws comes from here.

use ratatui::style::Color;
use serde::Deserialize;
use std::str::FromStr;

const SHIPPED: [&str; 3] = [include_str!("../../themes/dark.toml"), include_str!("../../themes/light.toml"), include_str!("../../themes/high-contrast.toml")];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub text: Color,
    pub border: Color,
    pub border_focus: Color,
    pub title: Color,
    pub trace: Color,
    pub heading: Color,
    pub code: Color,
    pub quote: Color,
    pub gauge: Color,
    pub key: Color,
    pub status_fg: Color,
    pub status_bg: Color,
    pub status_warn_bg: Color,
    pub status_error_fg: Color,
    pub status_error_bg: Color,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    colors: std::collections::BTreeMap<String, String>,
}

impl Theme {
    /// Parses a theme file; every colour must be present and valid.
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let c = |k: &str| -> Result<Color, String> {
            let v = f.colors.get(k).ok_or_else(|| format!("theme '{}' lacks colors.{k}", f.name))?;
            Color::from_str(v).map_err(|_| format!("theme '{}': colors.{k} = {v:?} is not a colour", f.name))
        };
        let known = ["text", "border", "border_focus", "title", "trace", "heading", "code", "quote", "gauge", "key", "status_fg", "status_bg", "status_warn_bg", "status_error_fg", "status_error_bg"];
        if let Some(extra) = f.colors.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("theme '{}': unknown colour {extra:?}", f.name));
        }
        Ok(Self {
            text: c("text")?,
            border: c("border")?,
            border_focus: c("border_focus")?,
            title: c("title")?,
            trace: c("trace")?,
            heading: c("heading")?,
            code: c("code")?,
            quote: c("quote")?,
            gauge: c("gauge")?,
            key: c("key")?,
            status_fg: c("status_fg")?,
            status_bg: c("status_bg")?,
            status_warn_bg: c("status_warn_bg")?,
            status_error_fg: c("status_error_fg")?,
            status_error_bg: c("status_error_bg")?,
            name: f.name,
        })
    }

    /// The shipped themes (dark first), then valid user themes; a user theme with a
    /// shipped name replaces it. Broken user files are reported, not fatal.
    pub fn load_all(user_dir: Option<&std::path::Path>) -> (Vec<Theme>, Vec<String>) {
        let mut themes: Vec<Theme> = SHIPPED.iter().map(|t| Theme::parse(t).expect("shipped theme")).collect();
        let mut problems = Vec::new();
        if let Some(dir) = user_dir {
            let mut paths: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
            paths.sort();
            for p in paths {
                match std::fs::read_to_string(&p).map_err(|e| e.to_string()).and_then(|t| Theme::parse(&t)) {
                    Ok(t) => match themes.iter_mut().find(|x| x.name == t.name) {
                        Some(slot) => *slot = t,
                        None => themes.push(t),
                    },
                    Err(e) => problems.push(format!("{}: {e}", p.display())),
                }
            }
        }
        (themes, problems)
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::parse(SHIPPED[0]).expect("shipped theme")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_themes_parse() {
        let (t, p) = Theme::load_all(None);
        assert_eq!(t.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(), ["dark", "light", "high-contrast"]);
        assert!(p.is_empty());
        assert_eq!(Theme::default().border_focus, Color::Cyan);
        assert_eq!(t[1].heading, Color::Rgb(0x8a, 0x4b, 0x00));
    }

    #[test]
    fn user_themes_extend_and_bad_ones_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mine = SHIPPED[0].replace("name = \"dark\"", "name = \"mine\"").replace("border_focus = \"cyan\"", "border_focus = \"#ff00ff\"");
        std::fs::write(dir.path().join("mine.toml"), mine).unwrap();
        std::fs::write(dir.path().join("bad.toml"), "name = \"bad\"\n[colors]\ntext = \"no-such-colour\"\n").unwrap();
        std::fs::write(dir.path().join("broken.toml"), "name = ").unwrap();
        let (t, p) = Theme::load_all(Some(dir.path()));
        assert_eq!(t.last().unwrap().name, "mine");
        assert_eq!(t.last().unwrap().border_focus, Color::Rgb(255, 0, 255));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|x| x.contains("bad.toml") && x.contains("not a colour") || x.contains("lacks")));
    }
}
