//! Names: one English rendering per Korean name, in every brief of a run, across runs, and in
//! the digest.
//!
//! Korean names are not romanised by rule in the press (the SK chairman is "Chey Tae-won", not
//! "Choe"), so a model renders the same name differently from one article to the next. Each
//! Korean name gets one canonical rendering, decided in this order:
//!
//! 1. the `[glossary]` pin, if there is one;
//! 2. the rendering settled by an earlier run (kept in the state store);
//! 3. for a name new in this run: the rendering used by the most of this run's briefs, ties
//!    going to the rendering of the article whose key (canonical path) sorts first.
//!
//! Pins and earlier renderings are applied to each brief as it is made ([`Names::unify`]). A
//! new name cannot be: which rendering most briefs use is known only when they are all made,
//! and taking the first one seen would let the order in which concurrent articles happen to
//! finish decide it, for good. So new names are only noted ([`Names::note`]), settled when the
//! run's articles are done ([`Names::settle`]), and the briefs that used another rendering are
//! rewritten then (`pipeline`). The result depends on the articles and the replies, never on
//! timing. An entity renamed either way is renamed in the entity list and in every English
//! field, and the brief's checks say so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::brief::BriefContent;
use crate::text::name_key;

/// One renaming done to a brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renaming {
    pub ko: String,
    pub from: String,
    pub to: String,
    /// Pinned by the glossary (else: as in the other briefs).
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
                "as in the other briefs"
            }
        )
    }
}

/// The renderings of names new in this run that one brief used: `(ko, en)` per entity, for
/// [`Names::note`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewNames(Vec<(String, String)>);

impl NewNames {
    /// Whether the brief used no name new in this run.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one new name was written as in this run: per rendering, the articles (by key) that
/// used it, and the Korean form as the first of them wrote it.
#[derive(Debug, Default)]
struct Uses {
    by_rendering: BTreeMap<String, BTreeSet<String>>,
    ko: BTreeMap<String, String>,
}

/// The outcome of [`Names::settle`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The settled `(ko, en)` of every name new in this run, for the state store.
    pub names: Vec<(String, String)>,
    /// Per article (by key), the renamings its brief needs.
    pub renamings: BTreeMap<String, Vec<Renaming>>,
}

/// The canonical renderings of a run.
pub struct Names {
    pinned: BTreeMap<String, String>,
    /// Settled by earlier runs; fixed for the whole run.
    known: BTreeMap<String, String>,
    /// Names new in this run, by key.
    new: Mutex<BTreeMap<String, Uses>>,
}

impl Names {
    /// A registry with the glossary's pins and the renderings earlier runs settled (`known`,
    /// from the state store).
    pub fn new(glossary: &BTreeMap<String, String>, known: Vec<(String, String)>) -> Names {
        Names {
            pinned: glossary
                .iter()
                .map(|(k, v)| (name_key(k), v.clone()))
                .collect(),
            known: known.into_iter().map(|(k, v)| (name_key(&k), v)).collect(),
            new: Mutex::new(BTreeMap::new()),
        }
    }

    /// The canonical rendering of a Korean name, if one is known (pinned or settled earlier).
    #[cfg(test)]
    pub fn canonical(&self, ko: &str) -> Option<String> {
        let k = name_key(ko);
        self.pinned.get(&k).or_else(|| self.known.get(&k)).cloned()
    }

    /// Makes `content` use the pinned and earlier-settled renderings. Returns what was renamed,
    /// and the renderings of names new in this run (for [`Names::note`] once the brief is
    /// written). Depends only on `content` and the registry as the run began.
    pub fn unify(&self, content: &mut BriefContent) -> (Vec<Renaming>, NewNames) {
        let mut renamings = Vec::new();
        let mut new = NewNames::default();
        for e in &mut content.entities {
            let k = name_key(&e.ko);
            if k.is_empty() || e.en.trim().is_empty() {
                continue;
            }
            let canonical = match self.pinned.get(&k) {
                Some(p) => Some((p, true)),
                None => self.known.get(&k).map(|c| (c, false)),
            };
            match canonical {
                Some((c, pinned)) if *c != e.en => {
                    renamings.push(Renaming {
                        ko: e.ko.clone(),
                        from: e.en.clone(),
                        to: c.clone(),
                        pinned,
                    });
                    e.en = c.clone();
                }
                Some(_) => {}
                None => new.0.push((e.ko.clone(), e.en.clone())),
            }
        }
        for r in &renamings {
            rename_english(content, &r.from, &r.to);
        }
        (renamings, new)
    }

    /// Counts the new names' renderings of the brief of article `article` (its key), once its
    /// brief is written.
    pub fn note(&self, article: &str, names: NewNames) {
        let mut new = self.new.lock().unwrap_or_else(|p| p.into_inner());
        for (ko, en) in names.0 {
            let uses = new.entry(name_key(&ko)).or_default();
            uses.by_rendering
                .entry(en)
                .or_default()
                .insert(article.to_string());
            uses.ko.entry(article.to_string()).or_insert(ko);
        }
    }

    /// Settles every name new in this run: the rendering used by the most articles, ties going
    /// to the rendering of the article whose key sorts first; and what each article's brief
    /// must then rename.
    pub fn settle(&self) -> Settlement {
        let new = self.new.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Settlement::default();
        for uses in new.values() {
            let Some((canonical, articles)) = uses.by_rendering.iter().max_by(|a, b| {
                // More articles wins; then the smaller first article (so `Reverse` it).
                a.1.len()
                    .cmp(&b.1.len())
                    .then_with(|| b.1.first().cmp(&a.1.first()))
            }) else {
                continue;
            };
            let first = articles.first().expect("a rendering has an article");
            let ko = uses.ko.get(first).cloned().unwrap_or_default();
            out.names.push((ko.clone(), canonical.clone()));
            for (en, articles) in &uses.by_rendering {
                if en == canonical {
                    continue;
                }
                for a in articles {
                    out.renamings.entry(a.clone()).or_default().push(Renaming {
                        ko: uses.ko.get(a).cloned().unwrap_or_else(|| ko.clone()),
                        from: en.clone(),
                        to: canonical.clone(),
                        pinned: false,
                    });
                }
            }
        }
        out
    }
}

/// Applies `renamings` (from [`Names::settle`]) to a brief: the entities and every English
/// field.
pub fn apply(content: &mut BriefContent, renamings: &[Renaming]) {
    for r in renamings {
        let k = name_key(&r.ko);
        for e in &mut content.entities {
            if name_key(&e.ko) == k && e.en == r.from {
                e.en = r.to.clone();
            }
        }
        rename_english(content, &r.from, &r.to);
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

    /// Notes `article`'s brief with `en` for 최태원, as the pipeline does once it is written.
    fn briefed(names: &Names, article: &str, en: &str) -> BriefContent {
        let mut c = content(en);
        let (renamed, new) = names.unify(&mut c);
        assert!(renamed.is_empty(), "nothing known to rename to yet");
        names.note(article, new);
        c
    }

    /// A new registry's settlement when the articles of `order` finish in that order, a.txt
    /// writing "Choi Tae-won" and every other one "Chey Tae-won".
    fn settled_after(order: &[&str]) -> Settlement {
        let names = Names::new(&BTreeMap::new(), Vec::new());
        for article in order {
            let en = if *article == "a.txt" {
                "Choi Tae-won"
            } else {
                "Chey Tae-won"
            };
            briefed(&names, article, en);
        }
        names.settle()
    }

    #[test]
    fn a_new_name_is_settled_by_most_briefs_then_by_the_first_article_whatever_the_order() {
        // Three articles finishing in every order: the outcome is the same.
        let orders = [
            ["c.txt", "a.txt", "b.txt"],
            ["a.txt", "b.txt", "c.txt"],
            ["b.txt", "c.txt", "a.txt"],
        ];
        for order in orders {
            // a.txt alone writes "Choi"; b and c write "Chey": the majority wins.
            let s = settled_after(&order);
            assert_eq!(
                s.names,
                vec![("최태원".to_string(), "Chey Tae-won".to_string())]
            );
            assert_eq!(s.renamings.keys().collect::<Vec<_>>(), ["a.txt"]);
            let r = &s.renamings["a.txt"];
            assert_eq!(
                (r[0].from.as_str(), r[0].to.as_str()),
                ("Choi Tae-won", "Chey Tae-won")
            );
            assert!(r[0].to_string().contains("as in the other briefs"));
        }
        // A tie goes to the first article by key, not to the first to finish.
        for order in [["b.txt", "a.txt"], ["a.txt", "b.txt"]] {
            let s = settled_after(&order);
            assert_eq!(s.names[0].1, "Choi Tae-won", "order {order:?}");
            assert_eq!(s.renamings.keys().collect::<Vec<_>>(), ["b.txt"]);
        }
    }

    #[test]
    fn a_settled_rendering_is_applied_to_the_entity_and_every_english_field() {
        let names = Names::new(&BTreeMap::new(), Vec::new());
        briefed(&names, "a.txt", "Choi Tae-won");
        let mut second = briefed(&names, "b.txt", "Chey Tae-won");
        let s = names.settle();
        apply(&mut second, &s.renamings["b.txt"]);
        assert_eq!(second.entities[0].en, "Choi Tae-won");
        assert_eq!(
            second.summary.en,
            "Chairman Choi Tae-won said so; Choi Tae-won's group agreed."
        );
        assert_eq!(
            second.key_points[0].en, "Chey Tae-wonson is another person.",
            "only whole words"
        );
    }

    #[test]
    fn a_name_settled_earlier_is_applied_at_once() {
        let names = Names::new(
            &BTreeMap::new(),
            vec![("최태원".to_string(), "Choi Tae-won".to_string())],
        );
        let mut c = content("Chey Tae-won");
        let (r, new) = names.unify(&mut c);
        assert_eq!(r.len(), 1);
        assert!(new.is_empty());
        assert_eq!(c.title.en, "Choi Tae-won speaks");
        assert!(names.settle().names.is_empty(), "nothing new to settle");
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
    async fn settled_renderings_persist_in_the_store() {
        let (_dir, store) = crate::store::Store::temp().await;
        let names = Names::new(&BTreeMap::new(), Vec::new());
        briefed(&names, "a.txt", "Choi Tae-won");
        store.add_names(names.settle().names).await.unwrap();
        let later = Names::new(&BTreeMap::new(), store.names().await.unwrap());
        let mut c = content("Chey Tae-won");
        later.unify(&mut c);
        assert_eq!(c.entities[0].en, "Choi Tae-won");
    }
}
