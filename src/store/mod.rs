//! The state store: one SQLite database under the output folder (`OUT/.hanbrief/state.db`)
//! holding the cache of model calls, the manifest of articles, the names registry and the
//! history of runs, plus the lock that keeps two runs off the same output folder.
//!
//! - **Calls** (`calls.rs`) are keyed by a hash of everything that shapes the answer (the
//!   model's identity, messages as sent, reply budget, format and schema, temperature; see
//!   `llm::client`). A finished call is committed the moment its reply arrives, so a run killed
//!   at any instant loses no finished call: the next run gets it from here for free.
//! - **Articles** (`articles.rs`, the manifest): path, content hash, the hash of the settings
//!   that shape a brief, status, last error, outputs. An article whose content and settings are
//!   unchanged and whose outputs are still on disk is reported `unchanged` and costs nothing.
//! - **Names** (`names.rs`): the English rendering settled for each Korean name.
//! - **Runs** (`runs.rs`): start, end, counts, tokens, cost, exit code, and the full report.
//! - **Quirks** (`quirks.rs`): what the client learned about an endpoint and model (a refused
//!   parameter, the server's real context size, …; see `llm::quirks`), so that the next run
//!   does not pay for the same refusal again.
//! - **Models** (`models.rs`): every identity (endpoint, and what its `/models` says) under
//!   which each configured model was seen, and what it mixes into keys and fingerprints: nothing
//!   for the first one, so that a brief stays "unchanged" until the model behind the name
//!   changes (see `llm::identity`).
//!
//! **One thread owns the connection.** SQLite calls block (on the disk, and on another
//! process's write lock for up to the busy timeout), so they never run on the async runtime's
//! workers: [`Store`] is a cheap handle that sends each query, as a closure, to the store's own
//! thread and awaits the answer ([`Store::run`]). Queries run one at a time in the order they
//! were sent, so a reply stored by one article is seen by the next lookup. To add a table, add
//! a file with its `CREATE TABLE IF NOT EXISTS` statement in [`TABLES`] and `impl Store` methods
//! that call [`Store::run`].
//!
//! **Lookups only read.** A cache hit does not write its "last used" time at once: the keys of
//! hits are kept on the store's thread and written in one transaction when the run finishes
//! ([`Store::finish_run`], [`Store::flush`]), when many have gathered, or when the store closes.
//! `hanbrief cache prune --older-than` reads that time.
//!
//! SQLite in WAL mode makes every commit atomic and durable against a killed process. The lock
//! is an advisory exclusive lock (`File::try_lock`) on `OUT/.hanbrief/lock`, released by the OS
//! when the process ends however it ends, holding the owner's pid for the message to a second
//! run.

mod articles;
mod calls;
mod lock;
mod maintenance;
mod models;
mod names;
mod quirks;
mod runs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::{Connection, OptionalExtension, params};

pub use articles::ManifestEntry;
pub use calls::StoreCache;
pub use lock::RunLock;
pub use maintenance::StoreStats;
pub use runs::RunSummary;

/// Folder of the state store inside the output folder.
pub const STATE_DIR: &str = ".hanbrief";
const DB_FILE: &str = "state.db";
/// Bumped when the tables change incompatibly.
const SCHEMA_VERSION: i64 = 1;
/// How long a write waits for another process's write (a `digest` beside a `summarize`) before
/// failing. It blocks only the store's thread, never the async workers.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every table, created if missing when a store opens. New tables are added here.
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    calls::TABLE,
    articles::TABLE,
    names::TABLE,
    quirks::TABLE,
    models::TABLE,
    runs::TABLE,
];

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
    #[error("the state store {} stopped working (its thread ended); run again", path.display())]
    Gone { path: PathBuf },
}

impl StoreError {
    /// The exit code of a run stopped by it: another run holding the folder, or a store from a
    /// newer hanbrief, are for the user to resolve (2); a store that cannot be used is not (4).
    pub fn exit_code(&self) -> u8 {
        match self {
            StoreError::Locked { .. } | StoreError::Newer { .. } => crate::error::EXIT_USAGE,
            StoreError::Io { .. } | StoreError::Db { .. } | StoreError::Gone { .. } => {
                crate::error::EXIT_INTERNAL
            }
        }
    }
}

/// The connection, as the store's thread holds it; what a query closure gets.
pub struct Db {
    conn: Connection,
    /// Keys of cache hits whose `used_at` is not written yet.
    touched: Vec<String>,
}

impl Db {
    /// The SQLite connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// The state store of one output folder: a handle to the thread that owns its connection.
/// Cloning is cheap; the thread ends (writing what is pending) when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store of output folder `out`.
    pub async fn open(out: &Path) -> Result<Store, StoreError> {
        let dir = out.join(STATE_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Store::start(dir.join(DB_FILE), false).await
    }

    /// Opens the store of `out` only if one exists (`hanbrief digest`, `hanbrief cache`: they
    /// use a store but do not create one).
    pub async fn open_existing(out: &Path) -> Result<Option<Store>, StoreError> {
        if out.join(STATE_DIR).join(DB_FILE).is_file() {
            Store::open(out).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Opens the store of `out` read-only, if one exists (`--dry-run`, which must change
    /// nothing on disk).
    pub async fn open_read_only(out: &Path) -> Result<Option<Store>, StoreError> {
        let path = out.join(STATE_DIR).join(DB_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        Store::start(path, true).await.map(Some)
    }

    /// Starts the store's thread, which opens the database; waits until it has.
    async fn start(path: PathBuf, read_only: bool) -> Result<Store, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, open_result) = tokio::sync::oneshot::channel();
        let db_path = path.clone();
        std::thread::Builder::new()
            .name("hanbrief-store".into())
            .spawn(move || {
                let mut db = match connect(&db_path, read_only) {
                    Ok(conn) => Db {
                        conn,
                        touched: Vec::new(),
                    },
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                if opened.send(Ok(())).is_err() {
                    return;
                }
                // Ends when every handle is gone.
                for job in queue {
                    job(&mut db);
                }
                if let Err(e) = flush_touched(&mut db) {
                    tracing::debug!("cannot record when cached calls were last used ({e})");
                }
            })
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        match open_result.await {
            Ok(Ok(())) => Ok(Store {
                inner: Arc::new(Inner { jobs, path }),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Gone { path }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `query` on the store's thread and returns its answer. Every method of the store
    /// goes through here; queries run one at a time, in the order they were sent.
    pub async fn run<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = answer.send(query(db));
        });
        let gone = || StoreError::Gone {
            path: self.inner.path.clone(),
        };
        self.inner.jobs.send(job).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?.map_err(|e| self.err(e))
    }

    /// Runs `query` on the store's thread without waiting for it (writes that must not hold up
    /// the caller, and whose failure only costs a later run some work); a failure is logged,
    /// saying what could not be done (`what`).
    pub fn run_detached<F>(&self, what: &'static str, query: F)
    where
        F: FnOnce(&mut Db) -> Result<(), rusqlite::Error> + Send + 'static,
    {
        let job: Job = Box::new(move |db| {
            if let Err(e) = query(db) {
                tracing::warn!("cannot {what} ({e})");
            }
        });
        if self.inner.jobs.send(job).is_err() {
            tracing::warn!("cannot {what} (the state store has closed)");
        }
    }

    /// Writes the pending "last used" times of cache hits (see the module docs).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.run(flush_touched).await
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.inner.path.clone(),
            source,
        }
    }
}

/// Opens the database, in WAL mode, with every table, and checks its schema version.
fn connect(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let db = |source| StoreError::Db {
        path: path.to_path_buf(),
        source,
    };
    if read_only {
        return Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db);
    }
    let conn = Connection::open(path).map_err(db)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    // WAL: readers never block the writer, and every commit survives a killed process.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db)?;
    for table in TABLES {
        conn.execute(table, []).map_err(db)?;
    }
    let version: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .map_err(db)?
        .and_then(|v| v.parse().ok());
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: v,
        }),
        Some(_) => Ok(conn),
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(db)?;
            Ok(conn)
        }
    }
}

/// Writes the "last used" time of the cache hits gathered so far, in one transaction.
fn flush_touched(db: &mut Db) -> Result<(), rusqlite::Error> {
    if db.touched.is_empty() || db.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        db.touched.clear();
        return Ok(());
    }
    let keys = std::mem::take(&mut db.touched);
    let tx = db.conn.transaction()?;
    {
        let mut st = tx.prepare_cached("UPDATE calls SET used_at = ?2 WHERE key = ?1")?;
        let t = now();
        for key in &keys {
            st.execute(params![key, t])?;
        }
    }
    tx.commit()
}

impl Store {
    /// A store in a new temporary folder, for tests: the folder lasts as long as its guard.
    #[cfg(test)]
    pub(crate) async fn temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        (dir, store)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).await.unwrap();
            s.run(|db| {
                db.conn()
                    .execute("UPDATE meta SET value = '99' WHERE key = 'schema'", [])
            })
            .await
            .unwrap();
        }
        assert!(matches!(
            Store::open(dir.path()).await,
            Err(StoreError::Newer { found: 99, .. })
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn queries_do_not_run_on_the_async_runtime() {
        // A current-thread runtime has one thread: a query run there would report its name.
        let (_dir, s) = Store::temp().await;
        let here = std::thread::current().id();
        let there = s
            .run(|_| {
                Ok((
                    std::thread::current().id(),
                    std::thread::current().name().map(str::to_string),
                ))
            })
            .await
            .unwrap();
        assert_ne!(there.0, here);
        assert_eq!(there.1.as_deref(), Some("hanbrief-store"));
    }

    #[tokio::test]
    async fn a_read_only_store_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).await.unwrap());
        let s = Store::open_read_only(dir.path()).await.unwrap().unwrap();
        let err = s
            .run(|db| db.conn().execute("DELETE FROM calls", []))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Db { .. }), "{err}");
    }
}
