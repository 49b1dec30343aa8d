use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the session database {path} is locked by another process. Hint: close the other longwriter, or wait")]
    Locked { path: String },
    #[error("the session database {path} is damaged ({detail}). Hint: move it aside; longwriter will start a new one")]
    Corrupt { path: String, detail: String },
    #[error("the session database {path} was written by a newer longwriter (schema {found}, this one knows {known})")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("no session {0}. Hint: longwriter sessions list")]
    NotFound(i64),
    #[error("session database {path}: {detail}")]
    Other { path: String, detail: String },
}

/// Schema migrations; `user_version` records how many have run.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE sessions (
    id       INTEGER PRIMARY KEY,
    created  TEXT NOT NULL,
    updated  TEXT NOT NULL,
    title    TEXT NOT NULL,
    model    TEXT NOT NULL,
    template TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    prompt   TEXT NOT NULL DEFAULT '',
    trace    TEXT NOT NULL DEFAULT '',
    draft    TEXT NOT NULL DEFAULT '',
    stats    TEXT NOT NULL DEFAULT 'null',
    rewards  TEXT NOT NULL DEFAULT 'null',
    state    TEXT NOT NULL DEFAULT 'idle'
);
CREATE VIRTUAL TABLE sessions_fts USING fts5(prompt, draft, content='sessions', content_rowid='id');
CREATE TRIGGER sessions_ai AFTER INSERT ON sessions BEGIN
    INSERT INTO sessions_fts(rowid, prompt, draft) VALUES (new.id, new.prompt, new.draft);
END;
CREATE TRIGGER sessions_ad AFTER DELETE ON sessions BEGIN
    INSERT INTO sessions_fts(sessions_fts, rowid, prompt, draft) VALUES ('delete', old.id, old.prompt, old.draft);
END;
CREATE TRIGGER sessions_au AFTER UPDATE OF prompt, draft ON sessions BEGIN
    INSERT INTO sessions_fts(sessions_fts, rowid, prompt, draft) VALUES ('delete', old.id, old.prompt, old.draft);
    INSERT INTO sessions_fts(rowid, prompt, draft) VALUES (new.id, new.prompt, new.draft);
END;
"#];

/// One saved session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: i64,
    pub created: String,
    pub updated: String,
    pub title: String,
    pub model: String,
    pub template: String,
    /// Sampling settings and target, as JSON.
    pub settings: serde_json::Value,
    pub prompt: String,
    pub trace: String,
    pub draft: String,
    pub stats: serde_json::Value,
    pub rewards: serde_json::Value,
    /// idle, generating, done: …, error: …
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub id: i64,
    pub updated: String,
    pub title: String,
    pub model: String,
    pub words: usize,
}

pub struct Store {
    conn: Connection,
    path: String,
}

/// Now, as RFC 3339 UTC.
pub fn now() -> String {
    // RFC 3339 in UTC without pulling in a date crate.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

impl Store {
    /// The database in the data dir.
    pub fn default_path() -> PathBuf {
        crate::paths::data_dir().join("longwriter.db")
    }

    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(&Self::default_path())
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Other { path: p.clone(), detail: crate::fsutil::describe_io(&e) })?;
        }
        let conn = Connection::open(path).map_err(|e| classify(&p, e))?;
        conn.busy_timeout(Duration::from_secs(2)).map_err(|e| classify(&p, e))?;
        let mut store = Self { conn, path: p };
        store.init()?;
        Ok(store)
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    fn init(&mut self) -> Result<(), StoreError> {
        // WAL: readers never block the writer, and a commit is one append.
        let _: String = self.conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        self.conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;").map_err(|e| self.err(e))?;
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { path: self.path.clone(), found: version, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(|e| classify(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| classify(&self.path, e))?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(|e| classify(&self.path, e))?;
            tx.commit().map_err(|e| classify(&self.path, e))?;
        }
        Ok(())
    }

    /// Creates a session and returns its id.
    pub fn create(&self, title: &str, model: &str, template: &str) -> Result<i64, StoreError> {
        let t = now();
        self.conn
            .execute("INSERT INTO sessions (created, updated, title, model, template) VALUES (?1, ?1, ?2, ?3, ?4)", params![t, title, model, template])
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Adds `s` as a new session (its `id` is ignored) in one transaction; returns the new id.
    pub fn insert(&mut self, s: &Session) -> Result<i64, StoreError> {
        let tx = self.conn.transaction().map_err(|e| classify(&self.path, e))?;
        let created = if s.created.is_empty() { now() } else { s.created.clone() };
        tx.execute(
            "INSERT INTO sessions (created, updated, title, model, template, settings, prompt, trace, draft, stats, rewards, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![created, now(), s.title, s.model, s.template, s.settings.to_string(), s.prompt, s.trace, s.draft, s.stats.to_string(), s.rewards.to_string(), s.state],
        )
        .map_err(|e| classify(&self.path, e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| classify(&self.path, e))?;
        Ok(id)
    }

    /// Saves every field of `s` in one transaction.
    pub fn save(&mut self, s: &Session) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| classify(&self.path, e))?;
        let n = tx
            .execute(
                "UPDATE sessions SET updated=?2, title=?3, model=?4, template=?5, settings=?6, prompt=?7, trace=?8, draft=?9, stats=?10, rewards=?11, state=?12 WHERE id=?1",
                params![s.id, now(), s.title, s.model, s.template, s.settings.to_string(), s.prompt, s.trace, s.draft, s.stats.to_string(), s.rewards.to_string(), s.state],
            )
            .map_err(|e| classify(&self.path, e))?;
        if n == 0 {
            return Err(StoreError::NotFound(s.id));
        }
        tx.commit().map_err(|e| classify(&self.path, e))
    }

    pub fn get(&self, id: i64) -> Result<Session, StoreError> {
        self.conn
            .query_row(
                "SELECT id, created, updated, title, model, template, settings, prompt, trace, draft, stats, rewards, state FROM sessions WHERE id=?1",
                [id],
                |r| {
                    let json = |i: usize| -> rusqlite::Result<serde_json::Value> { Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or(serde_json::Value::Null)) };
                    Ok(Session {
                        id: r.get(0)?,
                        created: r.get(1)?,
                        updated: r.get(2)?,
                        title: r.get(3)?,
                        model: r.get(4)?,
                        template: r.get(5)?,
                        settings: json(6)?,
                        prompt: r.get(7)?,
                        trace: r.get(8)?,
                        draft: r.get(9)?,
                        stats: json(10)?,
                        rewards: json(11)?,
                        state: r.get(12)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(id))
    }

    fn summaries(&self, sql: &str, arg: Option<&str>) -> Result<Vec<SessionSummary>, StoreError> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let map = |r: &rusqlite::Row| -> rusqlite::Result<SessionSummary> {
            let draft: String = r.get(4)?;
            Ok(SessionSummary { id: r.get(0)?, updated: r.get(1)?, title: r.get(2)?, model: r.get(3)?, words: crate::text::count_words(&draft) })
        };
        let rows = match arg {
            Some(a) => st.query_map([a], map),
            None => st.query_map([], map),
        }
        .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Most recently updated first.
    pub fn list(&self) -> Result<Vec<SessionSummary>, StoreError> {
        self.summaries("SELECT id, updated, title, model, draft FROM sessions ORDER BY updated DESC, id DESC", None)
    }

    /// The most recently updated session's id (the first of [`Store::list`]), if any.
    pub fn latest(&self) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn.query_row("SELECT id FROM sessions ORDER BY updated DESC, id DESC LIMIT 1", [], |r| r.get(0)).optional().map_err(|e| self.err(e))
    }

    /// Full-text search over prompts and drafts. Words are matched as plain terms, so
    /// FTS syntax in the query cannot cause errors.
    pub fn search(&self, query: &str) -> Result<Vec<SessionSummary>, StoreError> {
        let terms: Vec<String> = query.split_whitespace().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let q = terms.join(" ");
        self.summaries(
            "SELECT s.id, s.updated, s.title, s.model, s.draft FROM sessions_fts f JOIN sessions s ON s.id = f.rowid WHERE sessions_fts MATCH ?1 ORDER BY rank",
            Some(&q),
        )
    }

    pub fn remove(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM sessions WHERE id=?1", [id]).map_err(|e| self.err(e))? > 0)
    }
}

fn classify(path: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        match f.code {
            DatabaseBusy | DatabaseLocked => return StoreError::Locked { path: path.into() },
            DatabaseCorrupt | NotADatabase => return StoreError::Corrupt { path: path.into(), detail: msg.clone().unwrap_or_else(|| e.to_string()) },
            DiskFull => return StoreError::Other { path: path.into(), detail: "disk full: the last change was not saved; earlier ones are intact".into() },
            _ => {}
        }
    }
    StoreError::Other { path: path.into(), detail: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_save_get_list_search_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let id = s.create("Lighthouse", "smollm2-135m", "chat").unwrap();
        let mut sess = s.get(id).unwrap();
        sess.prompt = "Write about a lighthouse keeper".into();
        sess.draft = "The keeper climbed the stairs.".into();
        sess.trace = "plan".into();
        sess.stats = serde_json::json!({"generated_tokens": 12});
        s.save(&sess).unwrap();
        let got = s.get(id).unwrap();
        assert_eq!((got.draft.as_str(), got.trace.as_str()), ("The keeper climbed the stairs.", "plan"));
        assert_eq!(got.stats["generated_tokens"], 12);
        let id2 = s.create("Other", "m", "chat").unwrap();
        assert_eq!(s.list().unwrap().len(), 2);
        assert_eq!(s.latest().unwrap(), Some(s.list().unwrap()[0].id), "latest is the first of the list");
        assert_eq!(s.search("keeper").unwrap().iter().map(|x| x.id).collect::<Vec<_>>(), vec![id]);
        assert!(s.search("\"unbalanced AND (").unwrap().is_empty());
        assert!(s.remove(id).unwrap());
        assert!(s.search("keeper").unwrap().is_empty());
        assert!(matches!(s.get(id), Err(StoreError::NotFound(_))));
        assert!(!s.remove(id).unwrap());
        assert_eq!(s.list().unwrap()[0].id, id2);
        assert!(s.remove(id2).unwrap());
        assert_eq!(s.latest().unwrap(), None);
    }

    #[test]
    fn damaged_and_newer_databases_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.db");
        std::fs::write(&p, b"this is not a database at all, just some bytes that go on for a while............").unwrap();
        let e = Store::open(&p).err().expect("must fail").to_string();
        assert!(e.contains("damaged"), "{e}");
        let p2 = dir.path().join("new.db");
        Store::open(&p2).unwrap().conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let e = Store::open(&p2).err().expect("must fail").to_string();
        assert!(e.contains("newer longwriter"), "{e}");
    }

    #[test]
    fn a_locked_database_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.sqlite");
        let s = Store::open(&p).unwrap();
        let other = Connection::open(&p).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let e = s.create("t", "m", "chat").unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        assert!(e.to_string().contains("locked by another process"));
        other.execute_batch("ROLLBACK").unwrap();
        assert!(s.create("t", "m", "chat").is_ok(), "works again once the lock is gone");
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        let n = now();
        assert_eq!(n.len(), 20);
        assert!(n.ends_with('Z') && n.as_bytes()[10] == b'T');
    }
}
