//! Owns the terminal: raw mode, alternate screen, bracketed paste, mouse; restores it on
//! drop and from the panic hook, so a crash never leaves the shell unusable.

use crossterm::event::{DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture};
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{stdout, Stdout};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

pub struct Tui {
    pub terminal: Term,
}

impl Tui {
    pub fn enter() -> std::io::Result<Self> {
        install_panic_hook();
        setup()?;
        let terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
        Ok(Self { terminal })
    }

    /// Hands the terminal to another program (an editor) and takes it back afterwards.
    pub fn suspend<T>(&mut self, f: impl FnOnce() -> T) -> std::io::Result<T> {
        restore();
        let out = f();
        setup()?;
        self.terminal.clear()?;
        Ok(out)
    }
}

fn setup() -> std::io::Result<()> {
    enable_raw_mode()?;
    execute!(stdout(), EnterAlternateScreen, EnableBracketedPaste, EnableMouseCapture, cursor::Hide)
}

/// The OSC 52 escape sequence that puts `text` on the terminal's clipboard.
pub fn osc52(text: &str) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 12);
    out.push_str("\x1b]52;c;");
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push('\x07');
    out
}

/// Writes `seq` to the terminal directly (escape sequences ratatui does not know).
pub fn emit(seq: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = stdout();
    o.write_all(seq.as_bytes())?;
    o.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn osc52_is_base64_of_the_text() {
        assert_eq!(super::osc52("hi"), "\x1b]52;c;aGk=\x07");
        assert_eq!(super::osc52("abc"), "\x1b]52;c;YWJj\x07");
        assert_eq!(super::osc52("中"), "\x1b]52;c;5Lit\x07");
        assert_eq!(super::osc52(""), "\x1b]52;c;\x07");
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back; safe to call more than once.
pub fn restore() {
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste, LeaveAlternateScreen, cursor::Show);
    let _ = disable_raw_mode();
}

static UI_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

/// On the UI thread a panic restores the terminal, then reports as usual. A panic on any
/// other thread leaves the screen alone (printing over the TUI would garble it) and goes
/// to the log; the threads themselves turn it into an error the UI shows.
fn install_panic_hook() {
    let _ = UI_THREAD.set(std::thread::current().id());
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if UI_THREAD.get() == Some(&std::thread::current().id()) {
            restore();
            prev(info);
        } else {
            tracing::error!("panic on thread {:?}: {info}", std::thread::current().name());
        }
    }));
}
