//! The state store: one SQLite database under the output folder (`OUT/.hanbrief/state.db`)
//! holding the cache of model calls, the manifest of articles and the history of runs, plus the
//! lock that keeps two runs off the same output folder.
//!
//! - **Calls** are keyed by a hash of everything that shapes the answer (model, messages as sent,
//!   reply budget, format and schema, temperature; see `llm::client`). A finished call is
//!   committed the moment its reply arrives, so a run killed at any instant loses no finished
//!   call: the next run gets it from here for free.
//! - **Articles** (the manifest): path, content hash, the hash of the settings that shape a
//!   brief, status, last error, outputs. An article whose content and settings are unchanged and
//!   whose outputs are still on disk is reported `unchanged` and costs nothing.
//! - **Runs**: start, end, counts, tokens, cost, exit code, and the full report.
//! - **Quirks**: what the client learned about an endpoint and model (a refused parameter, the
//!   server's real context size, …; see `llm::quirks`), keyed by base URL and model, so that the
//!   next run does not pay for the same refusal again.
//!
//! SQLite in WAL mode makes every commit atomic and durable against a killed process. The lock
//! is an advisory exclusive lock (`File::try_lock`) on `OUT/.hanbrief/lock`, released by the OS
//! when the process ends however it ends, holding the owner's pid for the message to a second
//! run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::llm::{CallCache, ChatReply};

/// Folder of the state store inside the output folder.
pub const STATE_DIR: &str = ".hanbrief";
const DB_FILE: &str = "state.db";
const LOCK_FILE: &str = "lock";
/// Bumped when the tables change incompatibly.
const SCHEMA_VERSION: i64 = 1;

/// A state-store problem.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the state store in {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state store {} is not usable: {source}. If the disk is full or another program holds it, fix that and run again; if the file is damaged, move it away to start afresh (the cache and the run history go with it)",
        path.display()
    )]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "another hanbrief run ({holder}) is using the output folder {}; wait for it to finish, or stop it",
        path.display()
    )]
    Locked { path: PathBuf, holder: String },
    #[error("the state store {} was written by a newer hanbrief (schema {found}); upgrade hanbrief", path.display())]
    Newer { path: PathBuf, found: i64 },
}

/// Holds the output folder for one run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of output folder `out`, or says who holds it.
    pub fn acquire(out: &Path) -> Result<RunLock, StoreError> {
        let dir = out.join(STATE_DIR);
        let io = |source| StoreError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    path: out.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown process".to_string()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        let _ = writeln!(
            file,
            "pid {}, started {}",
            std::process::id(),
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
        );
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One article in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestEntry {
    pub path: String,
    pub content_hash: String,
    pub settings_hash: String,
    pub status: String,
    pub last_error: Option<String>,
    pub outputs: Vec<String>,
    pub updated_at: i64,
}

/// What `hanbrief cache stats` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub path: String,
    pub bytes: u64,
    pub calls: u64,
    pub calls_by_purpose: Vec<(String, u64)>,
    pub calls_by_model: Vec<(String, u64)>,
    pub cached_prompt_tokens: u64,
    pub cached_completion_tokens: u64,
    pub oldest_call: Option<String>,
    pub newest_call: Option<String>,
    pub articles_by_status: Vec<(String, u64)>,
    pub runs: u64,
    pub interrupted_runs: u64,
    pub last_run: Option<RunSummary>,
}

/// One row of the run history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub written: i64,
    pub unchanged: i64,
    pub skipped: i64,
    pub failed: i64,
    pub calls: i64,
    pub cached_calls: i64,
    /// US dollars; `None` when the run's model had no known price.
    pub cost_usd: Option<f64>,
}

/// The state store of one output folder.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store of output folder `out`.
    pub fn open(out: &Path) -> Result<Store, StoreError> {
        let dir = out.join(STATE_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let db = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        // WAL: readers never block the writer, and every commit survives a killed process.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS calls (
                 key TEXT PRIMARY KEY,
                 model TEXT NOT NULL,
                 purpose TEXT NOT NULL,
                 reply TEXT NOT NULL,
                 prompt_tokens INTEGER NOT NULL,
                 completion_tokens INTEGER NOT NULL,
                 created_at INTEGER NOT NULL,
                 used_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS articles (
                 path TEXT PRIMARY KEY,
                 content_hash TEXT NOT NULL,
                 settings_hash TEXT NOT NULL,
                 status TEXT NOT NULL,
                 last_error TEXT,
                 outputs TEXT NOT NULL,
                 updated_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS names (
                 ko TEXT PRIMARY KEY,
                 en TEXT NOT NULL,
                 first_seen INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS quirks (
                 endpoint TEXT NOT NULL,
                 model TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value TEXT NOT NULL,
                 learned_at INTEGER NOT NULL,
                 PRIMARY KEY (endpoint, model, key)
             );
             CREATE TABLE IF NOT EXISTS runs (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 kind TEXT NOT NULL,
                 started_at TEXT NOT NULL,
                 finished_at TEXT,
                 exit_code INTEGER,
                 written INTEGER NOT NULL DEFAULT 0,
                 unchanged INTEGER NOT NULL DEFAULT 0,
                 skipped INTEGER NOT NULL DEFAULT 0,
                 failed INTEGER NOT NULL DEFAULT 0,
                 calls INTEGER NOT NULL DEFAULT 0,
                 cached_calls INTEGER NOT NULL DEFAULT 0,
                 prompt_tokens INTEGER NOT NULL DEFAULT 0,
                 completion_tokens INTEGER NOT NULL DEFAULT 0,
                 cost_usd REAL NOT NULL DEFAULT 0,
                 report TEXT
             );",
        )
        .map_err(db)?;
        let version: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(db)?
            .and_then(|v| v.parse().ok());
        match version {
            Some(v) if v > SCHEMA_VERSION => return Err(StoreError::Newer { path, found: v }),
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(db)?;
            }
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Opens the store of `out` only if one exists (`hanbrief digest`, `hanbrief cache`: they
    /// use a store but do not create one).
    pub fn open_existing(out: &Path) -> Result<Option<Store>, StoreError> {
        if out.join(STATE_DIR).join(DB_FILE).is_file() {
            Store::open(out).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Opens the store of `out` read-only, if one exists (`--dry-run`, which must change
    /// nothing on disk).
    pub fn open_read_only(out: &Path) -> Result<Option<Store>, StoreError> {
        let path = out.join(STATE_DIR).join(DB_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Db {
            path: path.clone(),
            source,
        })?;
        Ok(Some(Store {
            conn: Mutex::new(conn),
            path,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    // -- calls ------------------------------------------------------------------------------

    /// A cached reply.
    pub fn get_call(&self, key: &str) -> Result<Option<ChatReply>, StoreError> {
        let conn = self.conn();
        // Cached statements: these run once or twice per call of a run.
        let reply: Option<String> = conn
            .prepare_cached("SELECT reply FROM calls WHERE key = ?1")
            .and_then(|mut st| st.query_row(params![key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        let Some(reply) = reply else { return Ok(None) };
        conn.prepare_cached("UPDATE calls SET used_at = ?2 WHERE key = ?1")
            .and_then(|mut st| st.execute(params![key, now()]))
            .map_err(|e| self.err(e))?;
        // A row we cannot read (written by another version) is a miss, not an error.
        Ok(serde_json::from_str(&reply).ok())
    }

    /// Stores a finished call (committed at once).
    pub fn put_call(
        &self,
        key: &str,
        model: &str,
        purpose: &str,
        reply: &ChatReply,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(reply).expect("a reply always serialises");
        let t = now();
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO calls (key, model, purpose, reply, prompt_tokens, completion_tokens, created_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )
            .and_then(|mut st| {
                st.execute(params![key, model, purpose, json, reply.usage.prompt_tokens as i64, reply.usage.completion_tokens as i64, t])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Drops a cached call.
    pub fn forget_call(&self, key: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM calls WHERE key = ?1", params![key])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // -- quirks -----------------------------------------------------------------------------

    /// What was learned about `model` at `endpoint`, as key/value pairs.
    pub fn quirks(&self, endpoint: &str, model: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT key, value FROM quirks WHERE endpoint = ?1 AND model = ?2 ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![endpoint, model], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Remembers one thing learned about `model` at `endpoint` (committed at once).
    pub fn learn_quirk(
        &self,
        endpoint: &str,
        model: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO quirks (endpoint, model, key, value, learned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![endpoint, model, key, value, now()]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // -- manifest ---------------------------------------------------------------------------

    /// The manifest entry of an article.
    pub fn article(&self, path: &str) -> Result<Option<ManifestEntry>, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT path, content_hash, settings_hash, status, last_error, outputs, updated_at FROM articles WHERE path = ?1",
            )
            .and_then(|mut st| {
                st.query_row(params![path], |r| {
                    Ok(ManifestEntry {
                        path: r.get(0)?,
                        content_hash: r.get(1)?,
                        settings_hash: r.get(2)?,
                        status: r.get(3)?,
                        last_error: r.get(4)?,
                        outputs: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                        updated_at: r.get(6)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// Records what happened to an article.
    pub fn record_article(&self, e: &ManifestEntry) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO articles (path, content_hash, settings_hash, status, last_error, outputs, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    e.path,
                    e.content_hash,
                    e.settings_hash,
                    e.status,
                    e.last_error,
                    serde_json::to_string(&e.outputs).expect("strings serialise"),
                    e.updated_at
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every article's outputs, `(key, outputs)`: the names earlier runs gave out.
    pub fn article_outputs(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.conn()
            .prepare_cached("SELECT path, outputs FROM articles WHERE outputs != '[]'")
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                    ))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Forgets an article's manifest entry (one re-keyed under a new key).
    pub fn forget_article(&self, path: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM articles WHERE path = ?1", params![path])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // -- names ------------------------------------------------------------------------------

    /// The English renderings of Korean names seen so far.
    pub fn names(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT ko, en FROM names ORDER BY ko")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Remembers the first rendering of a name (a later one does not replace it).
    pub fn add_name(&self, ko: &str, en: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO names (ko, en, first_seen) VALUES (?1, ?2, ?3)",
                params![ko, en, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // -- runs -------------------------------------------------------------------------------

    /// Records the start of a run; returns its id.
    pub fn start_run(&self, kind: &str, started_at: &str) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (kind, started_at) VALUES (?1, ?2)",
            params![kind, started_at],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid())
    }

    /// Records the end of a run.
    pub fn finish_run(&self, id: i64, report: &crate::report::RunReport) -> Result<(), StoreError> {
        let t = &report.totals;
        self.conn()
            .execute(
                "UPDATE runs SET finished_at = ?2, exit_code = ?3, written = ?4, unchanged = ?5, skipped = ?6, failed = ?7,
                 calls = ?8, cached_calls = ?9, prompt_tokens = ?10, completion_tokens = ?11, cost_usd = ?12, report = ?13
                 WHERE id = ?1",
                params![
                    id,
                    report.finished_at,
                    report.exit_code as i64,
                    t.written as i64,
                    t.unchanged as i64,
                    t.skipped as i64,
                    t.failed as i64,
                    t.calls as i64,
                    t.cached_calls as i64,
                    t.prompt_tokens as i64,
                    t.completion_tokens as i64,
                    // The column cannot say "unknown" (NOT NULL in stores already out there):
                    // readers take the cost from the report, where it is null then.
                    t.cost_usd.unwrap_or(0.0),
                    serde_json::to_string(&history_report(report)).expect("a report serialises"),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The latest runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, started_at, finished_at, exit_code, written, unchanged, skipped, failed, calls, cached_calls,
                        CASE WHEN report IS NULL THEN cost_usd ELSE json_extract(report, '$.totals.cost_usd') END
                 FROM runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(RunSummary {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    exit_code: r.get(3)?,
                    written: r.get(4)?,
                    unchanged: r.get(5)?,
                    skipped: r.get(6)?,
                    failed: r.get(7)?,
                    calls: r.get(8)?,
                    cached_calls: r.get(9)?,
                    cost_usd: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    // -- maintenance ------------------------------------------------------------------------

    /// Counts for `hanbrief cache stats`.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let last_run = self.runs(1)?.into_iter().next();
        let conn = self.conn();
        let q = |sql: &str| -> Result<Vec<(String, u64)>, rusqlite::Error> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect()
        };
        let one =
            |sql: &str| -> Result<i64, rusqlite::Error> { conn.query_row(sql, [], |r| r.get(0)) };
        let time = |sql: &str| -> Result<Option<String>, rusqlite::Error> {
            let t: Option<i64> = conn.query_row(sql, [], |r| r.get(0))?;
            Ok(t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|d| {
                    d.with_timezone(&chrono::Local)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }))
        };
        let inner = || -> Result<StoreStats, rusqlite::Error> {
            Ok(StoreStats {
                path: self.path.display().to_string(),
                bytes: file_size(&self.path),
                calls: one("SELECT COUNT(*) FROM calls")? as u64,
                calls_by_purpose: q(
                    "SELECT purpose, COUNT(*) FROM calls GROUP BY purpose ORDER BY 2 DESC",
                )?,
                calls_by_model: q(
                    "SELECT model, COUNT(*) FROM calls GROUP BY model ORDER BY 2 DESC",
                )?,
                cached_prompt_tokens: one("SELECT COALESCE(SUM(prompt_tokens), 0) FROM calls")?
                    as u64,
                cached_completion_tokens: one(
                    "SELECT COALESCE(SUM(completion_tokens), 0) FROM calls",
                )? as u64,
                oldest_call: time("SELECT MIN(created_at) FROM calls")?,
                newest_call: time("SELECT MAX(created_at) FROM calls")?,
                articles_by_status: q(
                    "SELECT status, COUNT(*) FROM articles GROUP BY status ORDER BY 2 DESC",
                )?,
                runs: one("SELECT COUNT(*) FROM runs")? as u64,
                interrupted_runs: one("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL")?
                    as u64,
                last_run: None,
            })
        };
        let mut stats = inner().map_err(|e| self.err(e))?;
        stats.last_run = last_run;
        Ok(stats)
    }

    /// Removes cached calls not used for `older_than` seconds; returns how many.
    pub fn prune(&self, older_than: std::time::Duration) -> Result<usize, StoreError> {
        let cutoff = now() - older_than.as_secs() as i64;
        let conn = self.conn();
        let n = conn
            .execute("DELETE FROM calls WHERE used_at < ?1", params![cutoff])
            .map_err(|e| self.err(e))?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Removes every cached call, and with `everything` the manifest and run history too.
    pub fn clear(&self, everything: bool) -> Result<usize, StoreError> {
        let conn = self.conn();
        let n = conn
            .execute("DELETE FROM calls", [])
            .map_err(|e| self.err(e))?;
        if everything {
            conn.execute_batch("DELETE FROM articles; DELETE FROM runs; DELETE FROM quirks;")
                .map_err(|e| self.err(e))?;
        }
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
            .map_err(|e| self.err(e))?;
        Ok(n)
    }
}

/// The report as kept in the history: without the unchanged articles, which a daily run over a
/// growing archive would otherwise store again every day.
fn history_report(report: &crate::report::RunReport) -> crate::report::RunReport {
    let mut r = report.clone();
    r.articles
        .retain(|a| a.status != crate::report::Status::Unchanged);
    r
}

fn file_size(db: &Path) -> u64 {
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    size(db.to_path_buf()) + size(PathBuf::from(wal))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The store as the client's call cache. With `read` off (`--force`), lookups always miss but
/// new replies are still stored.
pub struct StoreCache {
    pub store: std::sync::Arc<Store>,
    pub model: String,
    pub read: bool,
}

impl CallCache for StoreCache {
    fn get(&self, key: &str) -> Option<ChatReply> {
        if !self.read {
            return None;
        }
        match self.store.get_call(key) {
            Ok(hit) => hit,
            Err(e) => {
                tracing::warn!("cache lookup failed ({e}); making the call");
                None
            }
        }
    }

    fn put(&self, key: &str, purpose: &str, reply: &ChatReply) {
        if let Err(e) = self.store.put_call(key, &self.model, purpose, reply) {
            tracing::warn!("cannot cache a finished call ({e}); a later run will make it again");
        }
    }

    fn forget(&self, key: &str) {
        if let Err(e) = self.store.forget_call(key) {
            tracing::warn!("cannot drop an unusable cached reply ({e})");
        }
    }

    fn quirks(&self, endpoint: &str, model: &str) -> Vec<(String, String)> {
        self.store.quirks(endpoint, model).unwrap_or_else(|e| {
            tracing::warn!("cannot read what earlier runs learned about the endpoint ({e})");
            Vec::new()
        })
    }

    fn learn(&self, endpoint: &str, model: &str, key: &str, value: &str) {
        if let Err(e) = self.store.learn_quirk(endpoint, model, key, value) {
            tracing::warn!("cannot remember what was learned about the endpoint ({e})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{FinishReason, Usage};

    fn reply(text: &str) -> ChatReply {
        ChatReply {
            content: text.to_string(),
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                reasoning_tokens: 0,
            },
            usage_reported: true,
            cached: false,
        }
    }

    #[test]
    fn calls_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert!(s.get_call("k").unwrap().is_none());
            s.put_call("k", "m", "brief", &reply("안녕")).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get_call("k").unwrap().unwrap().content, "안녕");
        let stats = s.stats().unwrap();
        assert_eq!(stats.calls, 1);
        assert_eq!(stats.calls_by_purpose, vec![("brief".to_string(), 1)]);
        assert_eq!(stats.cached_prompt_tokens, 10);
    }

    #[test]
    fn quirks_are_kept_per_endpoint_and_model_and_cleared_with_everything() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.learn_quirk("https://a/v1", "m", "drop:temperature", "1")
                .unwrap();
            s.learn_quirk("https://a/v1", "m", "context_window", "4096")
                .unwrap();
            s.learn_quirk("https://a/v1", "m", "context_window", "2048")
                .unwrap();
            s.learn_quirk("https://b/v1", "m", "reasoning", "seen")
                .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.quirks("https://a/v1", "m").unwrap(),
            vec![
                ("context_window".to_string(), "2048".to_string()),
                ("drop:temperature".to_string(), "1".to_string())
            ]
        );
        assert!(s.quirks("https://a/v1", "other").unwrap().is_empty());
        s.clear(false).unwrap();
        assert_eq!(s.quirks("https://b/v1", "m").unwrap().len(), 1);
        s.clear(true).unwrap();
        assert!(s.quirks("https://b/v1", "m").unwrap().is_empty());
    }

    #[test]
    fn manifest_entries_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut e = ManifestEntry {
            path: "a.txt".into(),
            content_hash: "h1".into(),
            settings_hash: "s1".into(),
            status: "written".into(),
            last_error: None,
            outputs: vec!["out/a.json".into()],
            updated_at: 1,
        };
        s.record_article(&e).unwrap();
        e.status = "failed".into();
        e.last_error = Some("boom".into());
        s.record_article(&e).unwrap();
        assert_eq!(s.article("a.txt").unwrap().unwrap(), e);
        assert!(s.article("b.txt").unwrap().is_none());
    }

    #[test]
    fn the_lock_refuses_a_second_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("wait for it to finish"), "{msg}");
        drop(first);
        assert!(RunLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn prune_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.put_call("a", "m", "map", &reply("x")).unwrap();
        s.put_call("b", "m", "map", &reply("y")).unwrap();
        assert_eq!(s.prune(std::time::Duration::from_secs(3600)).unwrap(), 0);
        s.conn()
            .execute("UPDATE calls SET used_at = 0 WHERE key = 'a'", [])
            .unwrap();
        assert_eq!(s.prune(std::time::Duration::from_secs(3600)).unwrap(), 1);
        assert_eq!(s.clear(false).unwrap(), 1);
        assert_eq!(s.stats().unwrap().calls, 0);
    }

    #[test]
    fn run_history_keeps_an_unknown_cost_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let report = |cost: Option<f64>| {
            let mut a = crate::report::ArticleReport::new("a.txt", crate::report::Status::Written);
            a.cost_usd = cost;
            let articles = vec![a];
            crate::report::RunReport {
                schema: "hanbrief.report/1".into(),
                started_at: "t0".into(),
                finished_at: "t1".into(),
                elapsed_s: 1.0,
                model: "m".into(),
                base_url: "u".into(),
                dry_run: false,
                stopped: None,
                exit_code: 0,
                totals: crate::report::RunReport::tally(&articles, 1, 0, 0),
                articles,
            }
        };
        for cost in [Some(0.5), None] {
            let id = s.start_run("summarize", "t0").unwrap();
            s.finish_run(id, &report(cost)).unwrap();
            assert_eq!(s.runs(1).unwrap()[0].cost_usd, cost);
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.conn()
                .execute("UPDATE meta SET value = '99' WHERE key = 'schema'", [])
                .unwrap();
        }
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Newer { found: 99, .. })
        ));
    }
}
