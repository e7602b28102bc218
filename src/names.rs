//! Names: one English rendering per Korean name, in every brief of a run, across runs, and in
//! the digest.
//!
//! Korean names are not romanised by rule in the press (the SK chairman is "Chey Tae-won", not
//! "Choe"), so a model renders the same name differently from one article to the next. The
//! registry fixes a canonical rendering per Korean name: the `[glossary]` pin if there is one,
//! else the first rendering a brief used (kept in the state store, so it holds from day to day).
//! Each new brief is then unified: an entity whose English differs from the canonical rendering
//! is renamed, in the entity list and in every English field, and the brief's checks say so.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::brief::BriefContent;

/// One renaming done to a brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renaming {
    pub ko: String,
    pub from: String,
    pub to: String,
    /// Pinned by the glossary (else: as in earlier briefs).
    pub pinned: bool,
}

impl std::fmt::Display for Renaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\"{}\" written \"{}\" for {}, {}",
            self.from,
            self.to,
            self.ko,
            if self.pinned {
                "as pinned in the glossary"
            } else {
                "as in earlier briefs"
            }
        )
    }
}

/// The canonical renderings of a run.
pub struct Names {
    pinned: BTreeMap<String, String>,
    seen: Mutex<BTreeMap<String, String>>,
}

/// A name as compared: no spaces, middle dots or hyphens.
fn key(ko: &str) -> String {
    ko.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '-' | '・'))
        .collect()
}

impl Names {
    /// A registry with the glossary's pins and the renderings earlier runs settled (`known`,
    /// from the state store).
    pub fn new(glossary: &BTreeMap<String, String>, known: Vec<(String, String)>) -> Names {
        let pinned = glossary.iter().map(|(k, v)| (key(k), v.clone())).collect();
        let seen = known.into_iter().map(|(k, v)| (key(&k), v)).collect();
        Names {
            pinned,
            seen: Mutex::new(seen),
        }
    }

    /// The canonical rendering of a Korean name, if one is known.
    pub fn canonical(&self, ko: &str) -> Option<String> {
        let k = key(ko);
        self.pinned.get(&k).cloned().or_else(|| {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&k)
                .cloned()
        })
    }

    /// Makes `content` use the canonical renderings; records renderings of names not seen
    /// before. Returns what was renamed, and the new renderings (for the state store).
    pub fn unify(&self, content: &mut BriefContent) -> (Vec<Renaming>, Vec<(String, String)>) {
        let mut renamings = Vec::new();
        let mut new = Vec::new();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for e in &mut content.entities {
            let k = key(&e.ko);
            if k.is_empty() || e.en.trim().is_empty() {
                continue;
            }
            let (canonical, pinned) = match self.pinned.get(&k) {
                Some(p) => (Some(p.clone()), true),
                None => (seen.get(&k).cloned(), false),
            };
            match canonical {
                Some(c) if c != e.en => {
                    renamings.push(Renaming {
                        ko: e.ko.clone(),
                        from: e.en.clone(),
                        to: c.clone(),
                        pinned,
                    });
                    e.en = c;
                }
                Some(_) => {}
                None => {
                    seen.insert(k, e.en.clone());
                    new.push((e.ko.clone(), e.en.clone()));
                }
            }
        }
        drop(seen);
        for r in &renamings {
            rename_english(content, &r.from, &r.to);
        }
        (renamings, new)
    }
}

/// Replaces whole-word occurrences of `from` by `to` in every English field.
fn rename_english(content: &mut BriefContent, from: &str, to: &str) {
    let replace = |s: &mut String| {
        if s.contains(from) {
            *s = replace_words(s, from, to);
        }
    };
    replace(&mut content.title.en);
    replace(&mut content.summary.en);
    content
        .key_points
        .iter_mut()
        .for_each(|k| replace(&mut k.en));
    content.figures.iter_mut().for_each(|f| replace(&mut f.en));
}

/// `from` replaced by `to` where it stands as a whole word (not inside a longer word), and not
/// where the text already reads `to` ("Samsung Electronics Co." stays when `from` is "Samsung
/// Electronics" and `to` is "Samsung Electronics Co.").
pub fn replace_words(text: &str, from: &str, to: &str) -> String {
    let already: Vec<(usize, usize)> = text
        .match_indices(to)
        .map(|(i, m)| (i, i + m.len()))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, m) in text.match_indices(from) {
        let end = i + m.len();
        let before = text[..i].chars().next_back();
        let after = text[end..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
        let inside_to = already.iter().any(|(s, e)| *s <= i && end <= *e);
        if i >= last && boundary(before) && boundary(after) && !inside_to {
            out.push_str(&text[last..i]);
            out.push_str(to);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brief::{Bilingual, Entity, Grounded};

    fn content(en_name: &str) -> BriefContent {
        BriefContent {
            title: Bilingual {
                ko: "최태원 회장 발표".into(),
                en: format!("{en_name} speaks"),
            },
            summary: Bilingual {
                ko: "최태원 회장이 말했다.".into(),
                en: format!("Chairman {en_name} said so; {en_name}'s group agreed."),
            },
            key_points: vec![Grounded {
                ko: "협력".into(),
                en: format!("{en_name}son is another person."),
                quotes: vec![],
            }],
            entities: vec![Entity {
                ko: "최태원".into(),
                en: en_name.into(),
                kind: "person".into(),
            }],
            figures: vec![],
        }
    }

    #[test]
    fn the_first_rendering_becomes_canonical() {
        let names = Names::new(&BTreeMap::new(), Vec::new());
        let mut first = content("Choi Tae-won");
        assert!(names.unify(&mut first).0.is_empty());
        let mut second = content("Chey Tae-won");
        let (r, _) = names.unify(&mut second);
        assert_eq!(r.len(), 1);
        assert_eq!(second.entities[0].en, "Choi Tae-won");
        assert_eq!(
            second.summary.en,
            "Chairman Choi Tae-won said so; Choi Tae-won's group agreed."
        );
        assert_eq!(
            second.key_points[0].en, "Chey Tae-wonson is another person.",
            "only whole words"
        );
        assert!(r[0].to_string().contains("as in earlier briefs"));
    }

    #[test]
    fn renaming_never_doubles_a_longer_canonical_form() {
        assert_eq!(
            replace_words(
                "Samsung Electronics said; Samsung Electronics Co. agreed.",
                "Samsung Electronics",
                "Samsung Electronics Co."
            ),
            "Samsung Electronics Co. said; Samsung Electronics Co. agreed."
        );
        assert_eq!(
            replace_words("Choi and Choiseul", "Choi", "Chey"),
            "Chey and Choiseul"
        );
    }

    #[test]
    fn the_glossary_wins() {
        let glossary = BTreeMap::from([("최 태원".to_string(), "Chey Tae-won".to_string())]);
        let names = Names::new(&glossary, Vec::new());
        let mut c = content("Choi Tae-won");
        let (r, _) = names.unify(&mut c);
        assert!(r[0].pinned);
        assert_eq!(c.title.en, "Chey Tae-won speaks");
        assert_eq!(names.canonical("최태원").as_deref(), Some("Chey Tae-won"));
    }

    #[tokio::test]
    async fn renderings_persist_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).await.unwrap();
        let (_, new) = Names::new(&BTreeMap::new(), Vec::new()).unify(&mut content("Choi Tae-won"));
        store.add_names(new).await.unwrap();
        let later = Names::new(&BTreeMap::new(), store.names().await.unwrap());
        let mut c = content("Chey Tae-won");
        later.unify(&mut c);
        assert_eq!(c.entities[0].en, "Choi Tae-won");
    }
}
