//! Check: the pipeline's step after the model, comparing a brief with the cleaned article it
//! came from. Figures the source does not support, entities whose Korean name is not in the
//! source, pinned glossary names rendered otherwise, and signs of a degenerate brief. Nothing
//! here changes the brief: the findings go into its `checks`, the Markdown's warnings and the
//! run report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::brief::{BriefContent, fields};
use crate::figures::SourceFigures;

/// A figure in the brief that the article does not support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureCheck {
    /// The figure as the brief wrote it.
    pub text: String,
    /// Where: `summary.en`, `figures[2].ko`, …
    pub field: String,
}

/// A name whose pinned English rendering the brief did not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlossaryMiss {
    pub ko: String,
    pub expected: String,
    /// What the brief used instead, when it named the entity.
    pub found: Option<String>,
}

/// What the checks found. Empty lists mean nothing to report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    /// Figures in the brief (Korean or English) that the cleaned source does not support.
    pub unsupported_figures: Vec<FigureCheck>,
    /// Entities whose Korean name does not appear in the source.
    pub unknown_entities: Vec<String>,
    /// Pinned names rendered otherwise.
    pub glossary_misses: Vec<GlossaryMiss>,
    /// Anything else worth a reader's attention.
    pub warnings: Vec<String>,
}

impl Checks {
    /// Whether any check found something.
    pub fn is_clean(&self) -> bool {
        self.unsupported_figures.is_empty()
            && self.unknown_entities.is_empty()
            && self.glossary_misses.is_empty()
            && self.warnings.is_empty()
    }
}

/// Checks a brief against the cleaned source: figures, entity names, pinned renderings.
pub fn check(content: &BriefContent, source: &str, glossary: &BTreeMap<String, String>) -> Checks {
    let mut checks = Checks::default();
    let figures = SourceFigures::new(source);
    for (field, text) in fields(content) {
        for f in figures.unsupported(text) {
            if !checks.unsupported_figures.iter().any(|c| c.text == f.text) {
                checks.unsupported_figures.push(FigureCheck {
                    text: f.text,
                    field: field.clone(),
                });
            }
        }
    }
    let squashed_source = squash(source);
    for e in &content.entities {
        if !e.ko.is_empty() && !squashed_source.contains(&squash(&e.ko)) {
            checks.unknown_entities.push(e.ko.clone());
        }
    }
    checks.glossary_misses = glossary_misses(content, source, glossary);
    checks.warnings = degenerate(content, figures.count());
    checks
}

/// Signs of a brief that is shaped right but says little: the same text everywhere, or no
/// figures from a article full of them.
fn degenerate(c: &BriefContent, source_figures: usize) -> Vec<String> {
    let mut warnings = Vec::new();
    if c.summary.ko == c.title.ko || c.summary.en == c.title.en {
        warnings.push("the summary only repeats the title".to_string());
    }
    let mut points: Vec<&str> = c.key_points.iter().map(|k| k.ko.as_str()).collect();
    points.sort_unstable();
    points.dedup();
    if points.len() < c.key_points.len() {
        warnings.push("some key points repeat each other".to_string());
    }
    if c.figures.is_empty() && source_figures >= 5 {
        warnings.push(format!(
            "no figures in the brief, though the article has {source_figures}"
        ));
    }
    warnings
}

/// Lower-cased, without spaces and middle dots: "SK 하이닉스" and "SK하이닉스" are one name.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '・' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Pinned names that appear in the source but whose pinned English rendering the brief's
/// English text does not use.
pub fn glossary_misses(
    content: &BriefContent,
    source: &str,
    glossary: &BTreeMap<String, String>,
) -> Vec<GlossaryMiss> {
    let english: String = fields(content)
        .into_iter()
        .filter(|(f, _)| f.ends_with(".en"))
        .map(|(_, t)| t.to_lowercase())
        .chain(content.entities.iter().map(|e| e.en.to_lowercase()))
        .collect::<Vec<_>>()
        .join("\n");
    let korean: String = fields(content)
        .into_iter()
        .filter(|(f, _)| f.ends_with(".ko"))
        .map(|(_, t)| t.to_string())
        .chain(content.entities.iter().map(|e| e.ko.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    let mut misses = Vec::new();
    for (ko, en) in glossary {
        // Only names the brief talks about: in the source and in the brief's Korean.
        if !source.contains(ko.as_str()) || !korean.contains(ko.as_str()) {
            continue;
        }
        if english.contains(&en.to_lowercase()) {
            continue;
        }
        let found = content
            .entities
            .iter()
            .find(|e| e.ko.contains(ko.as_str()))
            .map(|e| e.en.clone());
        misses.push(GlossaryMiss {
            ko: ko.clone(),
            expected: en.clone(),
            found,
        });
    }
    misses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brief::tests::sample_json;
    use crate::brief::{Entity, parse_content};

    #[test]
    fn checks_flag_invented_figures_and_names() {
        let source = "한빛전자의 반도체 수출이 142억 달러로 18.4% 늘었다고 김서연 대표가 밝혔다.";
        let mut c = parse_content(&sample_json()).unwrap();
        assert!(check(&c, source, &BTreeMap::new()).is_clean());
        c.summary.en = "Chip exports rose to $15 billion.".into();
        c.entities.push(Entity {
            ko: "박지훈".into(),
            en: "Park Ji-hoon".into(),
            kind: "person".into(),
        });
        let checks = check(&c, source, &BTreeMap::new());
        assert_eq!(checks.unsupported_figures.len(), 1);
        assert_eq!(checks.unsupported_figures[0].text, "$15 billion");
        assert_eq!(checks.unsupported_figures[0].field, "summary.en");
        assert_eq!(checks.unknown_entities, vec!["박지훈".to_string()]);
    }

    #[test]
    fn glossary_misses_are_reported() {
        let source = "최태원 회장은 한빛전자와 협력한다고 밝혔다.";
        let mut c = parse_content(&sample_json()).unwrap();
        c.summary.ko = "최태원 회장이 협력을 밝혔다.".into();
        c.summary.en = "Chairman Choi Tae-won announced a partnership.".into();
        c.entities.push(Entity {
            ko: "최태원".into(),
            en: "Choi Tae-won".into(),
            kind: "person".into(),
        });
        let glossary = BTreeMap::from([("최태원".to_string(), "Chey Tae-won".to_string())]);
        let misses = glossary_misses(&c, source, &glossary);
        assert_eq!(misses.len(), 1);
        assert_eq!(misses[0].found.as_deref(), Some("Choi Tae-won"));
        c.summary.en = "Chairman Chey Tae-won announced a partnership.".into();
        c.entities.last_mut().unwrap().en = "Chey Tae-won".into();
        assert!(glossary_misses(&c, source, &glossary).is_empty());
    }
}
