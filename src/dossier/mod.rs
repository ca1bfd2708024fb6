//! The complaint-ready dossier for one sender (issue 20): from a [`Dossier`] (plain data, filled
//! from the log by the caller), one self-contained printable HTML page in English or French —
//! [`html`]. No database and no I/O here; the same input gives the same bytes.
//!
//! The legal texts the dossier cites are data, `texts.toml` beside this file, embedded in the
//! binary: [`legal_texts`].
//!
//! [`assemble()`] fills a [`Dossier`] from what the log read (`log::dossier`), the operators
//! table and the providers' facts; `trackless report dossier` writes the page and the evidence
//! files.

pub mod assemble;
pub mod model;
pub mod pdf;
pub mod render;

pub use assemble::{assemble, token_range};
pub use model::{
    Dossier, EspEntry, Lang, MessageEntry, RemoteEntry, Sender, TrackerEntry, UnknownLang,
};
pub use render::html;

use serde::Deserialize;

/// `texts.toml` as embedded.
pub const TEXTS_TOML: &str = include_str!("texts.toml");

/// One legal text a dossier cites, with its summary in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalText {
    pub id: String,
    /// ISO date a citation of the text uses.
    pub date: String,
    /// The official source.
    pub url: String,
    pub title_en: String,
    pub title_fr: String,
    pub summary_en: String,
    pub summary_fr: String,
    /// The pages read to check the summary.
    pub sources: Vec<String>,
    /// What could not be verified, in English.
    #[serde(default)]
    pub note: Option<String>,
}

impl LegalText {
    pub fn title(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.title_en,
            Lang::Fr => &self.title_fr,
        }
    }

    pub fn summary(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.summary_en,
            Lang::Fr => &self.summary_fr,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextsFile {
    version: u32,
    text: Vec<LegalText>,
}

/// The legal texts of `texts.toml`, in the file's order. An error names the line at fault (a
/// test parses the embedded file, so a release never has one).
pub fn legal_texts() -> Result<Vec<LegalText>, toml::de::Error> {
    let file: TextsFile = toml::from_str(TEXTS_TOML)?;
    if file.version != 1 {
        return Err(<toml::de::Error as serde::de::Error>::custom(format!(
            "texts.toml: version {} (this build reads version 1)",
            file.version
        )));
    }
    Ok(file.text)
}
