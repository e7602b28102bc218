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

/// Longest file name (bytes) that Linux, macOS and Windows file systems take.
pub const NAME_MAX: usize = 255;
/// The longest extension an output gets (`.json`).
const LONGEST_EXT: usize = ".json".len();

/// Output stems already given out, from the manifest: every stem has one owner (an article's
/// key, see [`InputFile::key`]), and an article keeps its stem for good once it has one.
#[derive(Debug, Default, Clone)]
pub struct Claims {
    by_stem: HashMap<PathBuf, String>,
    by_key: HashMap<String, PathBuf>,
}

impl Claims {
    /// Claims from manifest entries: `(key, outputs)`, outputs relative to the output folder.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Claims {
        let mut claims = Claims::default();
        for (key, outputs) in entries {
            let Some(stem) = outputs.iter().find_map(|o| stem_of_output(o)) else {
                continue;
            };
            claims.by_stem.insert(stem.clone(), key.to_string());
            claims.by_key.insert(key.to_string(), stem);
        }
        claims
    }

    /// The key of the article an earlier run gave `stem` to.
    pub fn owner(&self, stem: &Path) -> Option<&str> {
        self.by_stem.get(stem).map(String::as_str)
    }
}

/// `x.json` or `x.md` → `x`.
fn stem_of_output(output: &str) -> Option<PathBuf> {
    let s = output
        .strip_suffix(".json")
        .or_else(|| output.strip_suffix(".md"))?;
    Some(PathBuf::from(s))
}

/// Where one article's outputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The article's identity (its canonical path); the manifest's key.
    pub key: String,
    /// Output path without extension, relative to the output folder.
    pub stem: PathBuf,
    /// A manifest entry written by an earlier hanbrief under the old key (the stem itself),
    /// which this article takes over.
    pub legacy_key: Option<String>,
}

/// Gives every input its output stem. Names are stable and never shared:
///
/// - an article keeps the stem an earlier run gave it (the manifest remembers), so adding
///   `a.html` beside `a.txt` never moves `a.md`;
/// - a new article gets its relative path without the extension (`in/a/x.txt` → `a/x`), or
///   with it when an input beside it differs only in its extension (`x.txt`, `x.html` →
///   `x.txt`, `x.html`);
/// - a stem owned by another article (another input folder with the same relative path, an
///   earlier run over another folder into the same output folder) gets a suffix from the
///   article's own key (`x~1a2b3c4d`), so the result does not depend on argument order;
/// - a name too long for the file system is cut and given the same kind of suffix.
pub fn assign_names(inputs: &[InputFile], claims: &Claims) -> Vec<Naming> {
    let keys: Vec<String> = inputs.iter().map(InputFile::key).collect();
    let plain = |f: &InputFile| f.rel.with_extension("");
    // Inputs of one folder that differ only in their extension.
    let mut siblings: HashMap<PathBuf, std::collections::HashSet<&Path>> = HashMap::new();
    for f in inputs {
        siblings.entry(plain(f)).or_default().insert(&f.rel);
    }
    let mut taken: HashMap<PathBuf, String> = claims.by_stem.clone();
    let mut stems: Vec<Option<PathBuf>> = vec![None; inputs.len()];
    let mut legacy: Vec<Option<String>> = vec![None; inputs.len()];

    // Kept names first, then names from the manifest's old keys (the stem was the key).
    for (i, key) in keys.iter().enumerate() {
        stems[i] = claims.by_key.get(key).cloned();
    }
    for (i, f) in inputs.iter().enumerate() {
        if stems[i].is_some() {
            continue;
        }
        for candidate in [plain(f), f.rel.clone()] {
            let old_key = candidate.display().to_string();
            if taken.get(&candidate) == Some(&old_key) && !Path::new(&old_key).is_absolute() {
                taken.insert(candidate.clone(), keys[i].clone());
                legacy[i] = Some(old_key);
                stems[i] = Some(candidate);
                break;
            }
        }
    }
    // New names, in key order: which of two colliding inputs gets the plain name does not
    // depend on the order of the command line.
    let mut new: Vec<usize> = (0..inputs.len()).filter(|&i| stems[i].is_none()).collect();
    new.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    for i in new {
        let f = &inputs[i];
        let key = &keys[i];
        let preferred = if siblings[&plain(f)].len() > 1 {
            f.rel.clone()
        } else {
            plain(f)
        };
        let candidates = [fit(preferred.clone(), key), suffixed(&preferred, key)];
        let stem = candidates
            .into_iter()
            .find(|c| taken.get(c).is_none_or(|owner| owner == key))
            .expect("a key-suffixed stem is owned by its key alone");
        taken.insert(stem.clone(), key.clone());
        stems[i] = Some(stem);
    }
    keys.into_iter()
        .zip(stems)
        .zip(legacy)
        .map(|((key, stem), legacy_key)| Naming {
            key,
            stem: stem.expect("every input is named"),
            legacy_key,
        })
        .collect()
}

/// `stem` unchanged if its file name (with the longest extension) fits [`NAME_MAX`], else cut at
/// a character boundary and suffixed with the key's hash.
fn fit(stem: PathBuf, key: &str) -> PathBuf {
    let name_len = stem.file_name().map_or(0, |n| n.as_encoded_bytes().len());
    if name_len + LONGEST_EXT <= NAME_MAX {
        stem
    } else {
        suffixed(&stem, key)
    }
}

/// `stem~<8 hex digits of the key's hash>`, its file name cut to fit [`NAME_MAX`].
fn suffixed(stem: &Path, key: &str) -> PathBuf {
    let tag = format!("~{}", &blake3::hash(key.as_bytes()).to_hex()[..8]);
    let name = stem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let room = NAME_MAX - LONGEST_EXT - tag.len();
    let mut cut = name.len().min(room);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    stem.with_file_name(format!("{}{tag}", &name[..cut]))
}

/// Whether the file at `path` is one hanbrief wrote: a brief's JSON (its schema tag) or
/// Markdown (its source line). Used when the manifest cannot say (its folder was deleted).
pub fn looks_like_ours(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
            v.get("schema")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.starts_with("hanbrief."))
        }),
        Some("md") => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.starts_with("<sub>Source: `")),
        _ => false,
    }
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

    fn input(root: &str, rel: &str) -> InputFile {
        InputFile {
            path: PathBuf::from(root).join(rel),
            rel: PathBuf::from(rel),
        }
    }

    fn stems(names: &[Naming]) -> Vec<String> {
        names.iter().map(|n| n.stem.display().to_string()).collect()
    }

    fn tag(key: &str) -> String {
        format!("~{}", &blake3::hash(key.as_bytes()).to_hex()[..8])
    }

    #[test]
    fn names_mirror_folders_and_keep_extensions_only_beside_a_namesake() {
        let inputs = [
            input("/in", "a/x.txt"),
            input("/in", "b/x.txt"),
            input("/in", "y.txt"),
            input("/in", "y.html"),
        ];
        let names = assign_names(&inputs, &Claims::default());
        assert_eq!(stems(&names), ["a/x", "b/x", "y.txt", "y.html"]);
        assert_eq!(names[0].key, "/in/a/x.txt");
        assert_eq!(
            with_suffix(Path::new("y.txt"), "md"),
            PathBuf::from("y.txt.md")
        );
    }

    #[test]
    fn a_name_once_given_is_kept_when_a_namesake_appears() {
        let earlier = assign_names(&[input("/in", "a.txt")], &Claims::default());
        assert_eq!(stems(&earlier), ["a"]);
        let outputs = vec!["a.json".to_string(), "a.md".to_string()];
        let claims = Claims::new([(earlier[0].key.as_str(), outputs.as_slice())]);
        // `a.html` arrives beside `a.txt`: `a.txt` keeps `a`, the newcomer takes `a.html`.
        let later = assign_names(&[input("/in", "a.html"), input("/in", "a.txt")], &claims);
        assert_eq!(stems(&later), ["a.html", "a"]);
    }

    #[test]
    fn two_roots_with_one_relative_path_get_names_independent_of_argument_order() {
        let one = [input("/r1", "x.txt"), input("/r2", "x.txt")];
        let two = [input("/r2", "x.txt"), input("/r1", "x.txt")];
        let a = assign_names(&one, &Claims::default());
        let b = assign_names(&two, &Claims::default());
        assert_eq!(stems(&a), ["x", format!("x{}", tag("/r2/x.txt")).as_str()]);
        assert_eq!(stems(&b), [stems(&a)[1].clone(), stems(&a)[0].clone()]);
    }

    #[test]
    fn a_name_owned_by_another_folders_article_is_not_taken_over() {
        let outputs = vec!["x.md".to_string()];
        let claims = Claims::new([("/elsewhere/x.txt", outputs.as_slice())]);
        let names = assign_names(&[input("/in", "x.txt")], &claims);
        assert_eq!(stems(&names), [format!("x{}", tag("/in/x.txt"))]);
        // The owner itself keeps it.
        let names = assign_names(&[input("/elsewhere", "x.txt")], &claims);
        assert_eq!(stems(&names), ["x"]);
    }

    #[test]
    fn old_manifest_entries_keyed_by_stem_are_taken_over() {
        let outputs = vec!["econ/x.json".to_string(), "econ/x.md".to_string()];
        let claims = Claims::new([("econ/x", outputs.as_slice())]);
        let names = assign_names(&[input("/in", "econ/x.txt")], &claims);
        assert_eq!(stems(&names), ["econ/x"]);
        assert_eq!(names[0].legacy_key.as_deref(), Some("econ/x"));
    }

    #[test]
    fn names_too_long_for_the_file_system_are_cut_stably() {
        let long = format!("{}.txt", "가".repeat(84)); // 252 bytes of Hangul + ".txt"
        let inputs = [input("/in", &format!("sub/{long}"))];
        let a = assign_names(&inputs, &Claims::default());
        let b = assign_names(&inputs, &Claims::default());
        assert_eq!(a, b, "the same name every run");
        let name = a[0].stem.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.len() + ".json".len() <= NAME_MAX,
            "{} bytes",
            name.len()
        );
        assert!(name.starts_with("가가가"), "{name}");
        assert!(name.ends_with(&tag(&format!("/in/sub/{long}"))), "{name}");
        assert_eq!(a[0].stem.parent(), Some(Path::new("sub")));
        // Short names are left alone.
        let short = assign_names(&[input("/in", "짧은.txt")], &Claims::default());
        assert_eq!(stems(&short), ["짧은"]);
    }

    #[test]
    fn only_briefs_look_like_ours() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        assert!(looks_like_ours(&put(
            "b.json",
            r#"{"schema": "hanbrief.brief/1", "title": {}}"#
        )));
        assert!(!looks_like_ours(&put("c.json", r#"{"schema": "other"}"#)));
        assert!(looks_like_ours(&put(
            "b.md",
            "# 제목\n\n---\n<sub>Source: `a.txt` · UTF-8</sub>\n"
        )));
        assert!(!looks_like_ours(&put(
            "a.md",
            "# 미래에너지\n\n본문입니다.\n"
        )));
        assert!(!looks_like_ours(&dir.path().join("missing.md")));
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
