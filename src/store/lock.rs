//! The run lock: an advisory exclusive lock on `OUT/.hanbrief/lock`, so two runs never write
//! the same output folder at once. The OS releases it when the process ends, however it ends.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{STATE_DIR, StoreError};

const LOCK_FILE: &str = "lock";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
