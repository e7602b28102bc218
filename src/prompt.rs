//! Prompt templates: the built-in `prompts/*.md` (embedded in the binary), optionally replaced
//! file by file from a folder named in config, rendered with minijinja in strict mode (a
//! variable the template uses but the caller does not give is an error, not an empty string).
//!
//! The article is always *data*: templates place it between two fence lines carrying a marker
//! derived from the text and checked not to occur in it (see [`fence_for`]), and the system
//! prompt says that nothing between the fences is an instruction.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// A built-in template: its file name and text.
pub struct Builtin {
    pub name: &'static str,
    pub text: &'static str,
    /// What it is for, for `hanbrief prompts list`.
    pub purpose: &'static str,
}

/// A [`Builtin`] from `prompts/NAME`.
macro_rules! builtin {
    ($name:literal, $purpose:literal) => {
        Builtin {
            name: $name,
            text: include_str!(concat!("../prompts/", $name)),
            purpose: $purpose,
        }
    };
}

/// The built-in templates, in the order the pipeline uses them.
pub const BUILTINS: &[Builtin] = &[
    builtin!("system.md", "the system message of every call"),
    builtin!(
        "format.md",
        "the fields of a brief with their quotes, appended to brief.md and reduce.md prompts (`enforced`: the endpoint enforces the JSON schema, so only what goes in each field)"
    ),
    builtin!("brief.md", "a whole article → a brief, in one call"),
    builtin!("map.md", "one chunk of a long article → notes"),
    builtin!(
        "collapse.md",
        "several chunks' notes → shorter notes (when notes overflow one call)"
    ),
    builtin!("reduce.md", "all notes of an article → a brief"),
    builtin!(
        "repair.md",
        "asks once more when a reply is not a valid brief"
    ),
    builtin!(
        "ground.md",
        "asks once more when key points or figures do not quote the article word for word"
    ),
    builtin!(
        "select.md",
        "the article's picked sentences → a brief (strategy \"select\")"
    ),
    builtin!(
        "digest.md",
        "news items → the daily digest (title, overview, stories by topic)"
    ),
    builtin!(
        "digest_map.md",
        "a group of news items → stories (when the briefs overflow one digest call)"
    ),
];

/// A template failed to load or render.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(
        "the prompts folder {} (prompts.dir) does not exist: start it with `hanbrief prompts init {}`, or leave prompts.dir empty for the built-in prompts",
        path.display(),
        path.display()
    )]
    NoFolder { path: PathBuf },
    #[error("cannot read prompt {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("prompt {name} ({origin}) is not a valid template: {message}")]
    Syntax {
        name: String,
        origin: String,
        message: String,
    },
    #[error("prompt {name} ({origin}) failed to render: {message}")]
    Render {
        name: String,
        origin: String,
        message: String,
    },
}

/// The loaded templates.
pub struct Prompts {
    env: Environment<'static>,
    origins: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts")
            .field("origins", &self.origins)
            .finish()
    }
}

/// Keeps the error of a sample render (`config check`) unless one that reads the same is kept
/// already: a template renders once per sample, and one mistake is reported once.
pub(crate) fn keep_new_error(errors: &mut Vec<PromptError>, render: Result<String, PromptError>) {
    if let Err(e) = render
        && !errors.iter().any(|seen| seen.to_string() == e.to_string())
    {
        errors.push(e);
    }
}

impl Prompts {
    /// The built-in templates, with any file of the same name in `dir` taking precedence.
    pub fn load(dir: Option<&Path>) -> Result<Prompts, PromptError> {
        // A folder that is not there is a mistake (a typo, a wrong relative path), not a wish
        // for the built-in prompts: those are had by leaving prompts.dir empty.
        if let Some(d) = dir.filter(|d| !d.is_dir()) {
            return Err(PromptError::NoFolder {
                path: d.to_path_buf(),
            });
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        let mut origins = Vec::new();
        for b in BUILTINS {
            let (text, origin) = match dir.map(|d| d.join(b.name)).filter(|p| p.is_file()) {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| PromptError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    (text, path.display().to_string())
                }
                None => (b.text.to_string(), "built-in".to_string()),
            };
            env.add_template_owned(b.name, text)
                .map_err(|e| PromptError::Syntax {
                    name: b.name.to_string(),
                    origin: origin.clone(),
                    message: detailed(&e),
                })?;
            origins.push((b.name, origin));
        }
        Ok(Prompts { env, origins })
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, PromptError> {
        let origin = self.origin(name);
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| PromptError::Render {
                name: name.to_string(),
                origin: origin.clone(),
                message: detailed(&e),
            })?;
        tmpl.render(minijinja::value::Serde(ctx))
            .map(|s| s.trim().to_string())
            .map_err(|e| PromptError::Render {
                name: name.to_string(),
                origin,
                message: detailed(&e),
            })
    }

    /// A hash of every template's text: changes when any prompt changes.
    pub fn fingerprint(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for (name, _) in &self.origins {
            if let Ok(t) = self.env.get_template(name) {
                hasher.update(name.as_bytes());
                hasher.update(t.source().as_bytes());
            }
        }
        hasher.finalize().to_hex().to_string()
    }

    /// Where template `name` came from: "built-in" or the override's path.
    pub fn origin(&self, name: &str) -> String {
        self.origins
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| "unknown".to_string())
    }
}

fn detailed(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// A fence marker for `text`: derived from its hash (so the same article always renders the same
/// prompt, which keeps the cache warm) and guaranteed not to occur in it.
pub fn fence_for(text: &str) -> String {
    fence_from(text, blake3::hash(text.as_bytes()).to_hex().as_str())
}

/// The shortest `ARTICLE-` + prefix of `hash` (8 hex digits, then 4 more at a time) that does not
/// occur in `text`. Apart from [`fence_for`] so that a test can hand it a colliding hash: no test
/// can find a text that contains a prefix of its own blake3 hash.
fn fence_from(text: &str, hash: &str) -> String {
    let mut len = 8;
    loop {
        let fence = format!("ARTICLE-{}", &hash[..len]);
        if !text.contains(&fence) || len == hash.len() {
            return fence;
        }
        len += 4;
    }
}

/// Files in a prompts folder that are not templates hanbrief uses (a misspelt `breif.md` is
/// silently not used otherwise): hidden files aside.
pub fn strays(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && !BUILTINS.iter().any(|b| b.name == name)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Copies the built-in templates into `dir` (creating it) without overwriting existing files.
/// Returns the files written.
pub fn init_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for b in BUILTINS {
        let path = dir.join(b.name);
        if path.exists() {
            continue;
        }
        std::fs::write(&path, b.text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_unknown_variables_are_errors() {
        let p = Prompts::load(None).unwrap();
        let err = p.render("map.md", &serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("map.md"), "{err}");
        assert!(err.to_string().contains("undefined"), "{err}");
    }

    #[test]
    fn overrides_replace_builtins_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("map.md"), "NOTES {{ chunk }}").unwrap();
        let p = Prompts::load(Some(dir.path())).unwrap();
        assert_eq!(
            p.render("map.md", &serde_json::json!({"chunk": "x"}))
                .unwrap(),
            "NOTES x"
        );
        assert!(p.origin("map.md").ends_with("map.md"));
        assert_eq!(p.origin("brief.md"), "built-in");
    }

    #[test]
    fn a_missing_folder_is_an_error_and_strays_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("my-prompts");
        let err = Prompts::load(Some(&missing)).unwrap_err();
        assert!(matches!(err, PromptError::NoFolder { .. }), "{err}");
        assert!(err.to_string().contains("prompts init"), "{err}");
        std::fs::write(dir.path().join("breif.md"), "x").unwrap();
        std::fs::write(dir.path().join("brief.md"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        assert_eq!(strays(dir.path()), vec![dir.path().join("breif.md")]);
    }

    #[test]
    fn broken_override_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("brief.md"), "{% if %}").unwrap();
        let err = Prompts::load(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("brief.md"), "{err}");
    }

    #[test]
    fn the_fence_comes_from_the_text_and_is_stable() {
        let text = "기사 본문";
        let f = fence_for(text);
        assert!(f.starts_with("ARTICLE-") && f.len() == 16);
        assert_eq!(f, fence_for(text));
    }

    #[test]
    fn a_fence_that_occurs_in_the_text_grows_until_it_does_not() {
        let hash = blake3::hash(b"any").to_hex();
        let hash = hash.as_str();
        // The text already holds the 8- and 12-digit fences of this hash: the fence grows to 16.
        let text = format!("기사 ARTICLE-{} 본문 ARTICLE-{}", &hash[..8], &hash[..12]);
        let fence = fence_from(&text, hash);
        assert_eq!(fence, format!("ARTICLE-{}", &hash[..16]));
        assert!(!text.contains(&fence));
        // Without a collision the shortest fence is used.
        assert_eq!(fence_from("기사", hash), format!("ARTICLE-{}", &hash[..8]));
    }

    #[test]
    fn init_writes_every_builtin_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = init_dir(dir.path()).unwrap();
        assert_eq!(first.len(), BUILTINS.len());
        assert!(init_dir(dir.path()).unwrap().is_empty());
        assert!(Prompts::load(Some(dir.path())).is_ok());
    }
}
