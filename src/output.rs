//! Write: where each article's outputs go, and writing files atomically.
//!
//! Outputs mirror the input's sub-folders under the output folder (`in/a/x.txt` →
//! `out/a/x.md`), so equal file names in different folders never collide. Two inputs of the same
//! folder and stem (`x.txt` and `x.html`) keep their extension in the output name
//! (`x.txt.md`, `x.html.md`). Every file is written to a temporary file beside its target,
//! flushed to disk and renamed over it: a reader (or a crash) sees the old file or the new one,
//! never half of one. (Atomic, not fsynced: see `write_atomic`.)

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ingest::InputFile;

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // One stat instead of a failing mkdir for each level of an existing folder.
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(".hanbrief-").suffix(".tmp");
    // tempfile creates 0600 files; outputs are for reading, like any file the user writes:
    // 0666 less the umask.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    // No fsync: the rename is atomic against a killed process, which is the promise (the state
    // store makes the same one). An fsync per file cost a tenth of a run's CPU in the bench and
    // would only add durability across a power loss.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The output stem (path without extension, relative to the output folder) of each input.
pub fn output_stems(inputs: &[InputFile]) -> Vec<PathBuf> {
    let stem_of = |rel: &Path| rel.with_extension("");
    let mut counts: HashMap<PathBuf, usize> = HashMap::new();
    for f in inputs {
        *counts.entry(stem_of(&f.rel)).or_default() += 1;
    }
    let mut taken: HashMap<PathBuf, usize> = HashMap::new();
    inputs
        .iter()
        .map(|f| {
            let stem = stem_of(&f.rel);
            let base = if counts[&stem] > 1 {
                f.rel.clone()
            } else {
                stem
            };
            // Still equal (the same relative path from two input roots): number them.
            let n = taken.entry(base.clone()).or_default();
            *n += 1;
            if *n == 1 {
                base
            } else {
                let mut s = base.into_os_string();
                s.push(format!("-{n}"));
                PathBuf::from(s)
            }
        })
        .collect()
}

/// `stem` + `.ext`, keeping any dots already in the stem.
pub fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rel: &str) -> InputFile {
        InputFile {
            path: PathBuf::from("/in").join(rel),
            rel: PathBuf::from(rel),
        }
    }

    #[test]
    fn stems_mirror_folders_and_never_collide() {
        let inputs = [
            input("a/x.txt"),
            input("b/x.txt"),
            input("y.txt"),
            input("y.html"),
            input("a/x.txt"),
        ];
        let stems = output_stems(&inputs);
        assert_eq!(
            stems,
            vec![
                PathBuf::from("a/x.txt"),
                PathBuf::from("b/x"),
                PathBuf::from("y.txt"),
                PathBuf::from("y.html"),
                PathBuf::from("a/x.txt-2"),
            ]
        );
        assert_eq!(
            with_suffix(Path::new("y.txt"), "md"),
            PathBuf::from("y.txt.md")
        );
    }

    #[test]
    fn atomic_writes_replace_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_ne!(
                mode & 0o044,
                0,
                "outputs are readable by others (mode {mode:o})"
            );
        }
    }
}
