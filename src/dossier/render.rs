//! The dossier as one HTML page: self-contained (inline style, no script, nothing that loads
//! anything: no image, no stylesheet link, no `@import`, no CSS function that fetches, and a
//! Content-Security-Policy that forbids it anyway), printable on A4 (each appendix starts a
//! page, nothing needs a background colour to be read, long URLs wrap), in English or French.
//!
//! Everything that comes from the data is escaped; the words of the page are trusted HTML
//! written here ([`Words`]). Tracker URLs are shown as text, never as links: following one
//! would do what trackless exists to prevent. The only links are the official sources of the
//! legal texts (`http(s)`, which load nothing until clicked) and `#fragments` inside the page.
//!
//! Deterministic: lists are rendered in the order given; what is aggregated here (kinds,
//! remote hosts) goes through ordered maps and is sorted as documented where it is built.

use super::model::{Dossier, EspEntry, Lang, MessageEntry, RemoteEntry, TrackerEntry};
use super::{legal_texts, LegalText};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The page's own words in one language: trusted HTML (entities allowed), never data.
struct Words {
    title: &'static str,
    intro: &'static str,
    contents: &'static str,
    summary: &'static str,
    sender: &'static str,
    domain: &'static str,
    organisation: &'static str,
    /// After the organisation: where the name comes from.
    organisation_source: &'static str,
    period: &'static str,
    period_range: fn(&str, &str) -> String,
    messages: &'static str,
    headers_fact: &'static str,
    headers_kept: fn(&str) -> String,
    headers_none: &'static str,
    headers_not_kept: &'static str,
    made_from: &'static str,
    not_known: &'static str,
    /// Nothing recorded (no vendor for a tracking parameter, no rule).
    none: &'static str,
    /// ": " with the language's spacing.
    colon: &'static str,
    tracked: fn(usize, usize) -> String,
    with_token: fn(usize, usize) -> String,
    by_kind: &'static str,
    th_kind: &'static str,
    th_messages_with: &'static str,
    th_found: &'static str,
    no_tracker_at_all: &'static str,
    esps: &'static str,
    esps_intro: &'static str,
    th_provider: &'static str,
    th_role: &'static str,
    th_confidence: &'static str,
    th_legal_entity: &'static str,
    th_country: &'static str,
    th_parent: &'static str,
    th_parent_country: &'static str,
    th_us: &'static str,
    th_messages: &'static str,
    us_yes: &'static str,
    us_no: &'static str,
    us_count: fn(usize, usize, &str) -> String,
    no_esp: &'static str,
    hosts: &'static str,
    hosts_intro: &'static str,
    th_host: &'static str,
    th_operator: &'static str,
    th_content: &'static str,
    th_token_messages: &'static str,
    no_remote_at_all: &'static str,
    messages_title: &'static str,
    token_legend: &'static str,
    no_messages: &'static str,
    message_n: fn(usize, usize) -> String,
    date: &'static str,
    subject: &'static str,
    subject_not_logged: &'static str,
    message_id: &'static str,
    message_id_hash: fn(&str) -> String,
    original_sha256: &'static str,
    original_file: &'static str,
    header_block: &'static str,
    see: fn(&str, &str) -> String,
    trackers: &'static str,
    th_url: &'static str,
    th_rule: &'static str,
    th_vendor: &'static str,
    th_action: &'static str,
    no_tracker: &'static str,
    remote: &'static str,
    th_token: &'static str,
    th_removed: &'static str,
    th_count: &'static str,
    no_remote: &'static str,
    evidence: &'static str,
    no_evidence: &'static str,
    yes: &'static str,
    no: &'static str,
    appendix: fn(char, &str) -> String,
    headers_title: &'static str,
    headers_intro: &'static str,
    originals_title: &'static str,
    originals_intro: &'static str,
    th_message: &'static str,
    th_file: &'static str,
    th_sha256: &'static str,
    texts_title: &'static str,
    texts_intro: &'static str,
    texts_unavailable: &'static str,
    official_source: &'static str,
    kinds: &'static [(&'static str, &'static str)],
    actions: &'static [(&'static str, &'static str)],
    remote_kinds: &'static [(&'static str, &'static str)],
    layers: &'static [(&'static str, &'static str)],
    confidences: &'static [(&'static str, &'static str)],
    countries: &'static [(&'static str, &'static str)],
}

const EN: Words = Words {
    title: "Tracking dossier",
    intro: "This dossier gathers the facts trackless recorded about the messages received from one \
            sender: the trackers found in each message, the remote hosts each message would make a \
            mail client contact when it is opened, and the email service providers that built or \
            delivered it. trackless neutralised the trackers before the messages were delivered and \
            never contacted any of these hosts itself.",
    contents: "Contents",
    summary: "Summary",
    sender: "Sender",
    domain: "Domain",
    organisation: "Organisation",
    organisation_source: "as the From header names it, in the sender's own words",
    period: "Period",
    period_range: |a, b| format!("from {a} to {b}"),
    messages: "Messages",
    headers_fact: "Raw headers",
    headers_kept: |appendix| format!("kept ({appendix})"),
    headers_none: "kept by the log, but none was stored for these messages",
    headers_not_kept: "not kept (the log was written without <code>--keep-headers</code>)",
    made_from: "Made from",
    not_known: "not known",
    none: "—",
    colon: ": ",
    tracked: |t, n| match (t, n) {
        (_, 1) if t == 1 => "The message carried at least one tracker.".into(),
        (_, 1) => "The message carried no tracker.".into(),
        (0, _) => format!("None of the {n} messages carried a tracker."),
        _ if t == n => format!("All {n} messages carried at least one tracker."),
        _ => format!("{t} of the {n} messages carried at least one tracker."),
    },
    with_token: |t, n| match (t, n) {
        (_, 1) if t == 1 => {
            "It contained at least one URL carrying a per-recipient token.".into()
        }
        (_, 1) => "It contained no URL known to carry a per-recipient token.".into(),
        (0, _) => "None contained a URL known to carry a per-recipient token.".into(),
        _ if t == n => "All of them contained at least one URL carrying a per-recipient token."
            .into(),
        _ => format!("{t} of the {n} contained at least one URL carrying a per-recipient token."),
    },
    by_kind: "Trackers by kind",
    th_kind: "Kind",
    th_messages_with: "Messages carrying it",
    th_found: "Total found",
    no_tracker_at_all: "No tracker was recorded in these messages.",
    esps: "Email service providers",
    esps_intro: "A platform builds and instruments the message; a carrier delivers it. The legal \
                 facts come from trackless’s list of providers (<code>rules/providers.toml</code>), \
                 which cites a source for each.",
    th_provider: "Provider",
    th_role: "Role",
    th_confidence: "Confidence",
    th_legal_entity: "Legal entity",
    th_country: "Country",
    th_parent: "Parent company",
    th_parent_country: "Parent’s country",
    th_us: "US company or US-owned",
    th_messages: "Messages",
    us_yes: "<strong class=us>US</strong> yes",
    us_no: "no",
    us_count: |k, n, names| match k {
        0 => "None of these providers is known to be a US company or owned by one.".into(),
        _ if n == 1 => format!("This provider is a US company or owned by one: {names}."),
        _ if k == n && n == 2 => {
            format!("Both providers are US companies or owned by one: {names}.")
        }
        _ if k == n => format!("All {n} providers are US companies or owned by one: {names}."),
        _ if k == 1 => format!("1 of these {n} providers is a US company or owned by one: {names}."),
        _ => format!("{k} of these {n} providers are US companies or owned by one: {names}."),
    },
    no_esp: "No provider was named for these messages.",
    hosts: "Remote hosts a message would contact when opened",
    hosts_intro: "The hosts a mail client would contact to display these messages as they were \
                  sent, whether or not trackless removed the content. Each operator is named from \
                  the host name alone (<code>rules/operators.toml</code>); no DNS lookup is made. \
                  Sorted by operator, then host.",
    th_host: "Host",
    th_operator: "Operator",
    th_content: "Content",
    th_token_messages: "Messages with a per-recipient token",
    no_remote_at_all: "No remote content was recorded in these messages.",
    messages_title: "Messages",
    token_legend: "In the URLs below, the highlighted part (underlined twice on paper) is what \
                   trackless identified as a per-recipient token: a value that differs from one \
                   recipient to another, so that a request carrying it tells the sender who opened \
                   the message or followed the link.",
    no_messages: "No message is recorded for this sender.",
    message_n: |i, n| format!("Message {i} of {n}"),
    date: "Date",
    subject: "Subject",
    subject_not_logged: "not logged",
    message_id: "Message-ID",
    message_id_hash: |h| format!("not stored; its SHA-256 is <code>{h}</code>"),
    original_sha256: "SHA-256 of the original",
    original_file: "Original message",
    header_block: "Header block",
    see: |href, appendix| format!("<a href=\"#{href}\">appendix {appendix}</a>"),
    trackers: "Trackers",
    th_url: "URL",
    th_rule: "Rule",
    th_vendor: "Vendor",
    th_action: "What trackless did",
    no_tracker: "No tracker was found in this message.",
    remote: "Remote content",
    th_token: "Per-recipient token",
    th_removed: "Removed by trackless",
    th_count: "Count",
    no_remote: "No remote content was recorded in this message.",
    evidence: "What named the provider",
    no_evidence: "No evidence line was recorded.",
    yes: "yes",
    no: "no",
    appendix: |letter, title| format!("Appendix {letter} — {title}"),
    headers_title: "Raw headers",
    headers_intro: "The header block of each message as it was received, kept because the log was \
                    written with <code>--keep-headers</code>.",
    originals_title: "Original messages",
    originals_intro: "The original messages are kept as <code>.eml</code> files in the folder of \
                      this dossier. Their SHA-256 lets anyone check that a file is the message \
                      described here.",
    th_message: "Message",
    th_file: "File",
    th_sha256: "SHA-256",
    texts_title: "Texts these facts relate to",
    texts_intro: "A short factual summary of each text, with its date and official source. Each \
                  summary was checked against the sources listed in trackless’s \
                  <code>src/dossier/texts.toml</code>, which also says what could not be verified \
                  at the official source itself.",
    texts_unavailable: "The list of texts could not be read from this build of trackless.",
    official_source: "Official source",
    kinds: &[
        ("pixel", "tracking pixel"),
        ("spacer", "invisible remote image"),
        ("link", "tracked link"),
        ("font", "remote font"),
        ("skip", "part left unprocessed"),
    ],
    actions: &[
        ("removed", "removed"),
        ("unwrapped", "replaced by its destination"),
        ("cleaned", "tracking parameters removed"),
        ("kept-opaque", "kept (destination not recoverable offline)"),
        ("marked", "marked"),
        ("untouched", "left as it was"),
        ("skipped", "skipped"),
    ],
    remote_kinds: &[
        ("image", "image"),
        ("css", "image in CSS"),
        ("font", "font"),
        ("background", "background image"),
        ("srcset", "responsive image (srcset)"),
        ("poster", "video poster"),
        ("stylesheet", "stylesheet"),
    ],
    layers: &[
        ("platform", "platform (built the message)"),
        ("carrier", "carrier (delivered the message)"),
    ],
    confidences: &[("high", "high"), ("medium", "medium"), ("low", "low")],
    countries: &[
        ("AT", "Austria"),
        ("AU", "Australia"),
        ("BE", "Belgium"),
        ("CA", "Canada"),
        ("CH", "Switzerland"),
        ("DE", "Germany"),
        ("FR", "France"),
        ("GB", "United Kingdom"),
        ("IE", "Ireland"),
        ("IL", "Israel"),
        ("IN", "India"),
        ("JE", "Jersey"),
        ("LT", "Lithuania"),
        ("NL", "Netherlands"),
        ("PL", "Poland"),
        ("SE", "Sweden"),
        ("SI", "Slovenia"),
        ("US", "United States"),
    ],
};

const FR: Words = Words {
    title: "Dossier de traçage",
    intro:
        "Ce dossier rassemble les faits que trackless a enregistrés sur les messages reçus d’un \
            expéditeur&nbsp;: les traceurs trouvés dans chaque message, les serveurs distants \
            qu’un logiciel de messagerie contacterait à l’ouverture de chaque message, et les \
            prestataires d’envoi de courriels qui l’ont construit ou acheminé. trackless a \
            neutralisé les traceurs avant la remise des messages et n’a lui-même contacté aucun \
            de ces serveurs.",
    contents: "Sommaire",
    summary: "Synthèse",
    sender: "Expéditeur",
    domain: "Domaine",
    organisation: "Organisme",
    organisation_source:
        "selon le nom affiché de son en-tête From, dans les termes de l’expéditeur",
    period: "Période",
    period_range: |a, b| format!("du {a} au {b}"),
    messages: "Messages",
    headers_fact: "En-têtes bruts",
    headers_kept: |appendix| format!("conservés ({appendix})"),
    headers_none: "conservés par le journal, mais aucun n’a été enregistré pour ces messages",
    headers_not_kept: "non conservés (le journal a été écrit sans <code>--keep-headers</code>)",
    made_from: "Établi à partir de",
    not_known: "inconnu",
    none: "—",
    colon: "&nbsp;: ",
    tracked: |t, n| match (t, n) {
        (_, 1) if t == 1 => "Le message contenait au moins un traceur.".into(),
        (_, 1) => "Le message ne contenait aucun traceur.".into(),
        (0, _) => format!("Aucun des {n} messages ne contenait de traceur."),
        _ if t == n => format!("Les {n} messages contenaient tous au moins un traceur."),
        _ => format!("{t} des {n} messages contenaient au moins un traceur."),
    },
    with_token: |t, n| match (t, n) {
        (_, 1) if t == 1 => {
            "Il contenait au moins une URL porteuse d’un jeton propre au destinataire.".into()
        }
        (_, 1) => {
            "Il ne contenait aucune URL connue pour porter un jeton propre au destinataire.".into()
        }
        (0, _) => {
            "Aucun ne contenait d’URL connue pour porter un jeton propre au destinataire.".into()
        }
        _ if t == n => {
            "Tous contenaient au moins une URL porteuse d’un jeton propre au destinataire.".into()
        }
        _ => format!(
            "{t} des {n} contenaient au moins une URL porteuse d’un jeton propre au destinataire."
        ),
    },
    by_kind: "Traceurs par type",
    th_kind: "Type",
    th_messages_with: "Messages qui en contiennent",
    th_found: "Nombre total",
    no_tracker_at_all: "Aucun traceur n’a été enregistré dans ces messages.",
    esps: "Prestataires d’envoi de courriels",
    esps_intro: "Une plateforme construit le message et y insère les dispositifs de suivi&nbsp;; \
                 un transporteur l’achemine. Les informations juridiques proviennent de la liste \
                 des prestataires de trackless (<code>rules/providers.toml</code>), qui cite une \
                 source pour chacune.",
    th_provider: "Prestataire",
    th_role: "Rôle",
    th_confidence: "Certitude",
    th_legal_entity: "Entité juridique",
    th_country: "Pays",
    th_parent: "Société mère",
    th_parent_country: "Pays de la société mère",
    th_us: "Société américaine ou détenue par une société américaine",
    th_messages: "Messages",
    us_yes: "<strong class=us>US</strong> oui",
    us_no: "non",
    us_count: |k, n, names| match k {
        0 => "Aucun de ces prestataires n’est, à notre connaissance, une société américaine ou \
              détenue par une société américaine."
            .into(),
        _ if n == 1 => format!(
            "Ce prestataire est une société américaine ou détenue par une société \
             américaine&nbsp;: {names}."
        ),
        _ if k == n => format!(
            "Les {n} prestataires sont des sociétés américaines ou détenues par une société \
             américaine&nbsp;: {names}."
        ),
        _ if k == 1 => format!(
            "1 de ces {n} prestataires est une société américaine ou détenue par une société \
             américaine&nbsp;: {names}."
        ),
        _ => format!(
            "{k} de ces {n} prestataires sont des sociétés américaines ou détenues par une \
             société américaine&nbsp;: {names}."
        ),
    },
    no_esp: "Aucun prestataire n’a été identifié pour ces messages.",
    hosts: "Serveurs distants qu’un message contacterait à l’ouverture",
    hosts_intro:
        "Les serveurs qu’un logiciel de messagerie contacterait pour afficher ces messages \
                  tels qu’ils ont été envoyés, que trackless ait retiré ce contenu ou non. \
                  L’exploitant de chaque serveur est déterminé à partir de son seul nom \
                  (<code>rules/operators.toml</code>), sans requête DNS. Tri par exploitant, puis \
                  par serveur.",
    th_host: "Serveur",
    th_operator: "Exploitant",
    th_content: "Contenu",
    th_token_messages: "Messages avec un jeton propre au destinataire",
    no_remote_at_all: "Aucun contenu distant n’a été enregistré dans ces messages.",
    messages_title: "Messages",
    token_legend:
        "Dans les URL ci-dessous, la partie surlignée (soulignée deux fois sur papier) est \
                   ce que trackless a identifié comme un jeton propre au destinataire&nbsp;: une \
                   valeur qui diffère d’un destinataire à l’autre, de sorte qu’une requête qui la \
                   porte indique à l’expéditeur qui a ouvert le message ou suivi le lien.",
    no_messages: "Aucun message n’est enregistré pour cet expéditeur.",
    message_n: |i, n| format!("Message {i} sur {n}"),
    date: "Date",
    subject: "Objet",
    subject_not_logged: "non enregistré",
    message_id: "Message-ID",
    message_id_hash: |h| format!("non conservé&nbsp;; son empreinte SHA-256 est <code>{h}</code>"),
    original_sha256: "SHA-256 de l’original",
    original_file: "Message original",
    header_block: "En-têtes",
    see: |href, appendix| format!("<a href=\"#{href}\">annexe {appendix}</a>"),
    trackers: "Traceurs",
    th_url: "URL",
    th_rule: "Règle",
    th_vendor: "Fournisseur",
    th_action: "Traitement par trackless",
    no_tracker: "Aucun traceur n’a été trouvé dans ce message.",
    remote: "Contenu distant",
    th_token: "Jeton propre au destinataire",
    th_removed: "Retiré par trackless",
    th_count: "Nombre",
    no_remote: "Aucun contenu distant n’a été enregistré dans ce message.",
    evidence: "Éléments qui désignent le prestataire",
    no_evidence: "Aucun élément n’a été enregistré.",
    yes: "oui",
    no: "non",
    appendix: |letter, title| format!("Annexe {letter} — {title}"),
    headers_title: "En-têtes bruts",
    headers_intro: "Les en-têtes de chaque message tels qu’ils ont été reçus, conservés parce que \
                    le journal a été écrit avec <code>--keep-headers</code>.",
    originals_title: "Messages originaux",
    originals_intro: "Les messages originaux sont conservés sous forme de fichiers \
                      <code>.eml</code> dans le dossier de ce document. Leur empreinte SHA-256 \
                      permet à chacun de vérifier qu’un fichier est bien le message décrit ici.",
    th_message: "Message",
    th_file: "Fichier",
    th_sha256: "SHA-256",
    texts_title: "Textes auxquels ces faits se rapportent",
    texts_intro: "Un bref résumé factuel de chaque texte, avec sa date et sa source officielle. \
                  Chaque résumé a été vérifié à partir des sources énumérées dans le fichier \
                  <code>src/dossier/texts.toml</code> de trackless, qui indique aussi ce qui n’a \
                  pas pu être vérifié à la source officielle elle-même.",
    texts_unavailable: "La liste des textes n’a pas pu être lue dans cette version de trackless.",
    official_source: "Source officielle",
    kinds: &[
        ("pixel", "pixel de suivi"),
        ("spacer", "image distante invisible"),
        ("link", "lien suivi"),
        ("font", "police distante"),
        ("skip", "partie non traitée"),
    ],
    actions: &[
        ("removed", "supprimé"),
        ("unwrapped", "remplacé par sa destination"),
        ("cleaned", "paramètres de suivi retirés"),
        (
            "kept-opaque",
            "conservé (destination impossible à retrouver hors ligne)",
        ),
        ("marked", "signalé"),
        ("untouched", "laissé tel quel"),
        ("skipped", "ignoré"),
    ],
    remote_kinds: &[
        ("image", "image"),
        ("css", "image dans le CSS"),
        ("font", "police"),
        ("background", "image d’arrière-plan"),
        ("srcset", "image adaptative (srcset)"),
        ("poster", "affiche de vidéo"),
        ("stylesheet", "feuille de style"),
    ],
    layers: &[
        ("platform", "plateforme (a construit le message)"),
        ("carrier", "transporteur (a acheminé le message)"),
    ],
    confidences: &[("high", "élevée"), ("medium", "moyenne"), ("low", "faible")],
    countries: &[
        ("AT", "Autriche"),
        ("AU", "Australie"),
        ("BE", "Belgique"),
        ("CA", "Canada"),
        ("CH", "Suisse"),
        ("DE", "Allemagne"),
        ("FR", "France"),
        ("GB", "Royaume-Uni"),
        ("IE", "Irlande"),
        ("IL", "Israël"),
        ("IN", "Inde"),
        ("JE", "Jersey"),
        ("LT", "Lituanie"),
        ("NL", "Pays-Bas"),
        ("PL", "Pologne"),
        ("SE", "Suède"),
        ("SI", "Slovénie"),
        ("US", "États-Unis"),
    ],
};

/// Shown in both languages at the foot of every dossier, whatever its language.
const FOOTER_EN: &str = "These are facts recorded by software, not legal advice: only a \
                         supervisory authority or a court can decide whether a law was broken.";
const FOOTER_FR: &str = "Ce document présente des faits relevés par un logiciel, non un avis \
                         juridique&nbsp;: seule une autorité de contrôle ou une juridiction peut \
                         dire si une règle de droit a été enfreinte.";

const STYLE: &str = "\
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #111; \
background: #fff; max-width: 62em; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin: 0 0 .4em; }
h2 { font-size: 1.3em; border-bottom: 2px solid #333; padding-bottom: .15em; margin: 2em 0 .6em; }
h3 { font-size: 1.1em; margin: 1.6em 0 .5em; }
h4 { font-size: 1em; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 1em; font-size: .9em; }
th, td { border: 1px solid #888; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre { font-family: ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace; \
font-size: .88em; }
td, dd, li { overflow-wrap: break-word; }
code, pre, a { overflow-wrap: anywhere; }
pre { white-space: pre-wrap; border: 1px solid #888; padding: .5em; margin: .4em 0 1em; }
mark { background: #ffe066; color: inherit; text-decoration: underline double; }
strong.us { border: 1px solid currentColor; padding: 0 .2em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1.2em; margin: .5em 0 1em; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
ul.evidence { padding-left: 1.2em; }
.note { font-size: .92em; }
section.message { border-top: 1px solid #888; margin-top: 1.5em; }
article.text { margin: 0 0 1.2em; }
article.text h3 { margin-bottom: .2em; }
footer { margin-top: 3em; border-top: 1px solid #888; padding-top: .5em; font-size: .85em; }
@page { size: A4; margin: 16mm 14mm 18mm; }
@media print {
  body { font-size: 10pt; max-width: none; margin: 0; padding: 0; color: #000; }
  nav { display: none; }
  th { background: none; }
  mark { background: none; font-weight: 700; }
  a { color: inherit; text-decoration: none; }
  .appendix { break-before: page; page-break-before: always; }
  h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  tr, li, dl.facts dt, dl.facts dd, pre { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
}
";

/// The order kinds are listed in the summary; any other kind follows, alphabetically.
const KIND_ORDER: &[&str] = &["pixel", "link", "font", "spacer", "skip"];

/// The dossier as one HTML page in `lang`.
pub fn html(d: &Dossier, lang: Lang) -> String {
    let w = match lang {
        Lang::En => &EN,
        Lang::Fr => &FR,
    };
    let texts = legal_texts();
    let appendices = Appendices::of(d);
    let mut out = String::with_capacity(32 << 10);
    let title = format!("{} — {}", w.title, esc(&d.sender.address));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n\
         <p>{}</p>\n</header>\n",
        lang.code(),
        w.intro
    );
    contents(d, w, &appendices, &mut out);
    summary(d, w, &appendices, &mut out);
    messages(d, w, &appendices, &mut out);
    if let Some(letter) = appendices.headers {
        headers_appendix(d, w, letter, &mut out);
    }
    if let Some(letter) = appendices.originals {
        originals_appendix(d, w, letter, &mut out);
    }
    texts_appendix(texts.as_deref().ok(), w, lang, appendices.texts, &mut out);
    out.push_str("<footer>\n");
    if !d.generated_from.trim().is_empty() {
        let _ = writeln!(
            out,
            "<p>{}{}{}</p>",
            w.made_from,
            w.colon,
            esc(&d.generated_from)
        );
    }
    let _ = write!(
        out,
        "<p lang=\"en\">{FOOTER_EN}</p>\n<p lang=\"fr\">{FOOTER_FR}</p>\n</footer>\n</body>\n</html>\n"
    );
    out
}

/// The appendices present, lettered in order: headers (when some were kept), original files
/// (when some were kept), legal texts (always).
struct Appendices {
    headers: Option<char>,
    originals: Option<char>,
    texts: char,
}

impl Appendices {
    fn of(d: &Dossier) -> Appendices {
        let mut letters = ['A', 'B', 'C'].into_iter();
        let mut next = || letters.next().unwrap_or('?');
        let headers =
            (d.keep_headers && d.messages.iter().any(|m| m.headers.is_some())).then(&mut next);
        let originals = d
            .messages
            .iter()
            .any(|m| m.original_file.is_some())
            .then(&mut next);
        Appendices {
            headers,
            originals,
            texts: next(),
        }
    }
}

fn contents(d: &Dossier, w: &Words, a: &Appendices, out: &mut String) {
    let _ = write!(
        out,
        "<nav>\n<h2>{}</h2>\n<ol>\n<li><a href=\"#summary\">{}</a></li>\n\
         <li><a href=\"#messages\">{}</a> ({})</li>\n",
        w.contents,
        w.summary,
        w.messages_title,
        d.messages.len()
    );
    if let Some(l) = a.headers {
        let _ = writeln!(
            out,
            "<li><a href=\"#headers\">{}</a></li>",
            (w.appendix)(l, w.headers_title)
        );
    }
    if let Some(l) = a.originals {
        let _ = writeln!(
            out,
            "<li><a href=\"#originals\">{}</a></li>",
            (w.appendix)(l, w.originals_title)
        );
    }
    let _ = write!(
        out,
        "<li><a href=\"#texts\">{}</a></li>\n</ol>\n</nav>\n",
        (w.appendix)(a.texts, w.texts_title)
    );
}

fn summary(d: &Dossier, w: &Words, a: &Appendices, out: &mut String) {
    let s = &d.sender;
    let period = match &d.period {
        Some((first, last)) if first == last => esc(first),
        Some((first, last)) => (w.period_range)(&esc(first), &esc(last)),
        None => w.not_known.to_string(),
    };
    let headers = match a.headers {
        Some(l) => (w.headers_kept)(&(w.see)("headers", &l.to_string())),
        None if d.keep_headers => w.headers_none.to_string(),
        None => w.headers_not_kept.to_string(),
    };
    let _ = write!(
        out,
        "<section id=\"summary\">\n<h2>1. {}</h2>\n<dl class=\"facts\">\n\
         <dt>{}</dt><dd><bdi>{}</bdi></dd>\n<dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n\
         <dt>{}</dt><dd>{period}</dd>\n<dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{headers}</dd>\n</dl>\n",
        w.summary,
        w.sender,
        esc(&s.address),
        w.domain,
        esc(&s.domain),
        w.organisation,
        match known(s.organisation.as_deref()) {
            Some(o) => format!("<bdi>{}</bdi> ({})", esc(o), w.organisation_source),
            None => w.not_known.to_string(),
        },
        w.period,
        w.messages,
        d.messages.len(),
        w.headers_fact,
    );
    let n = d.messages.len();
    if n > 0 {
        let tracked = d.messages.iter().filter(|m| !m.trackers.is_empty()).count();
        let with_token = d.messages.iter().filter(|m| has_token(m)).count();
        let _ = writeln!(
            out,
            "<p>{} {}</p>",
            (w.tracked)(tracked, n),
            (w.with_token)(with_token, n)
        );
    }

    // Trackers by kind: messages carrying each, and how many were found in all.
    let _ = writeln!(out, "<h3>{}</h3>", w.by_kind);
    let mut kinds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for m in &d.messages {
        let mut seen = BTreeSet::new();
        for t in &m.trackers {
            let e = kinds.entry(t.kind.as_str()).or_default();
            e.1 += 1;
            if seen.insert(t.kind.as_str()) {
                e.0 += 1;
            }
        }
    }
    if kinds.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", w.no_tracker_at_all);
    } else {
        let _ = writeln!(
            out,
            "<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>",
            w.th_kind, w.th_messages_with, w.th_found
        );
        let ordered = KIND_ORDER
            .iter()
            .copied()
            .filter(|k| kinds.contains_key(k))
            .chain(kinds.keys().copied().filter(|k| !KIND_ORDER.contains(k)));
        for k in ordered {
            let (messages, found) = kinds.get(k).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{messages}</td><td class=\"n\">{found}</td></tr>",
                label(w.kinds, k)
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }

    esp_table(&d.esps, w, out);
    hosts_table(&d.messages, w, out);
    out.push_str("</section>\n");
}

fn esp_table(esps: &[EspEntry], w: &Words, out: &mut String) {
    let _ = writeln!(out, "<h3>{}</h3>", w.esps);
    if esps.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", w.no_esp);
        return;
    }
    let _ = write!(
        out,
        "<p class=\"note\">{}</p>\n<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        w.esps_intro,
        w.th_provider,
        w.th_role,
        w.th_confidence,
        w.th_legal_entity,
        w.th_country,
        w.th_parent,
        w.th_parent_country,
        w.th_us,
        w.th_messages
    );
    for e in esps {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&e.name),
            label(w.layers, &e.layer),
            label(w.confidences, &e.confidence),
            opt(w, e.legal_entity.as_deref()),
            country(w, e.jurisdiction.as_deref()),
            opt(w, e.parent.as_deref()),
            country(w, e.parent_jurisdiction.as_deref()),
            us(w, e.us_exposure),
            e.messages
        );
    }
    out.push_str("</tbody>\n</table>\n");
    let us_names: Vec<String> = esps
        .iter()
        .filter(|e| e.us_exposure == Some(true))
        .map(|e| esc(&e.name))
        .collect();
    let _ = writeln!(
        out,
        "<p>{}</p>",
        (w.us_count)(us_names.len(), esps.len(), &us_names.join(", "))
    );
}

/// The remote hosts of all messages, one row per host, sorted by operator (unknown last), then
/// host name.
fn hosts_table(messages: &[MessageEntry], w: &Words, out: &mut String) {
    struct Host<'a> {
        first: &'a RemoteEntry,
        kinds: BTreeSet<&'a str>,
        messages: usize,
        with_token: usize,
    }
    let mut hosts: BTreeMap<&str, Host> = BTreeMap::new();
    for m in messages {
        let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
        for r in &m.remote {
            let h = hosts.entry(r.host.as_str()).or_insert_with(|| Host {
                first: r,
                kinds: BTreeSet::new(),
                messages: 0,
                with_token: 0,
            });
            h.kinds.insert(r.kind.as_str());
            *seen.entry(r.host.as_str()).or_default() |= r.token;
        }
        for (host, token) in seen {
            if let Some(h) = hosts.get_mut(host) {
                h.messages += 1;
                h.with_token += usize::from(token);
            }
        }
    }
    let _ = writeln!(out, "<h3>{}</h3>", w.hosts);
    if hosts.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", w.no_remote_at_all);
        return;
    }
    let mut rows: Vec<(&str, Host)> = hosts.into_iter().collect();
    rows.sort_by(|(ha, a), (hb, b)| {
        let op = |h: &Host| known(h.first.operator.as_deref()).map(str::to_lowercase);
        (op(a).is_none(), op(a), *ha).cmp(&(op(b).is_none(), op(b), *hb))
    });
    let _ = write!(
        out,
        "<p class=\"note\">{}</p>\n<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        w.hosts_intro,
        w.th_host,
        w.th_operator,
        w.th_country,
        w.th_us,
        w.th_content,
        w.th_messages,
        w.th_token_messages
    );
    for (host, h) in rows {
        let kinds: Vec<String> = h.kinds.iter().map(|k| label(w.remote_kinds, k)).collect();
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(host),
            opt(w, h.first.operator.as_deref()),
            country(w, h.first.country.as_deref()),
            us(w, h.first.us_exposure),
            kinds.join(", "),
            h.messages,
            h.with_token
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn messages(d: &Dossier, w: &Words, a: &Appendices, out: &mut String) {
    let _ = writeln!(
        out,
        "<section id=\"messages\">\n<h2>2. {}</h2>",
        w.messages_title
    );
    if d.messages.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", w.no_messages);
    } else if d.messages.iter().any(|m| {
        m.trackers
            .iter()
            .any(|t| token_span(&t.url, t.token).is_some())
    }) {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", w.token_legend);
    }
    let n = d.messages.len();
    for (i, m) in d.messages.iter().enumerate() {
        message(m, i + 1, n, w, a, out);
    }
    out.push_str("</section>\n");
}

fn message(m: &MessageEntry, i: usize, n: usize, w: &Words, a: &Appendices, out: &mut String) {
    let _ = write!(
        out,
        "<section class=\"message\" id=\"m{i}\">\n<h3>{} — {}</h3>\n<dl class=\"facts\">\n\
         <dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n",
        (w.message_n)(i, n),
        esc(&m.date),
        w.date,
        esc(&m.date),
        w.subject,
        match &m.subject {
            Some(s) => format!("<bdi>{}</bdi>", esc(s)),
            None => w.subject_not_logged.to_string(),
        }
    );
    let id = match (&m.message_id, &m.message_id_sha256) {
        (Some(id), _) => format!("<code>{}</code>", esc(id)),
        (None, Some(h)) => (w.message_id_hash)(&esc(h)),
        (None, None) => w.not_known.to_string(),
    };
    let _ = writeln!(out, "<dt>{}</dt><dd>{id}</dd>", w.message_id);
    if let Some(h) = &m.original_sha256 {
        let _ = writeln!(
            out,
            "<dt>{}</dt><dd><code>{}</code></dd>",
            w.original_sha256,
            esc(h)
        );
    }
    if let (Some(f), Some(l)) = (&m.original_file, a.originals) {
        let _ = writeln!(
            out,
            "<dt>{}</dt><dd><code>{}</code> ({})</dd>",
            w.original_file,
            esc(f),
            (w.see)("originals", &l.to_string())
        );
    }
    if let (Some(_), Some(l)) = (&m.headers, a.headers) {
        let _ = writeln!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            w.header_block,
            (w.see)(&format!("h{i}"), &format!("{l}.{i}"))
        );
    }
    out.push_str("</dl>\n");

    let _ = writeln!(out, "<h4>{}</h4>", w.trackers);
    if m.trackers.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", w.no_tracker);
    } else {
        let _ = writeln!(
            out,
            "<table>\n<thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>",
            w.th_kind, w.th_url, w.th_rule, w.th_vendor, w.th_action
        );
        for (j, t) in m.trackers.iter().enumerate() {
            tracker_row(t, j + 1, w, out);
        }
        out.push_str("</tbody>\n</table>\n");
    }

    let _ = writeln!(out, "<h4>{}</h4>", w.remote);
    if m.remote.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", w.no_remote);
    } else {
        let _ = writeln!(
            out,
            "<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
             <th>{}</th><th>{}</th></tr></thead>\n<tbody>",
            w.th_host,
            w.th_content,
            w.th_operator,
            w.th_country,
            w.th_us,
            w.th_token,
            w.th_removed,
            w.th_count
        );
        for r in &m.remote {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&r.host),
                label(w.remote_kinds, &r.kind),
                opt(w, r.operator.as_deref()),
                country(w, r.country.as_deref()),
                us(w, r.us_exposure),
                yes_no(w, r.token),
                yes_no(w, r.removed),
                r.count
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }

    let _ = writeln!(out, "<h4>{}</h4>", w.evidence);
    if m.esp_evidence.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", w.no_evidence);
    } else {
        out.push_str("<ul class=\"evidence\">\n");
        for line in &m.esp_evidence {
            let _ = writeln!(out, "<li><code>{}</code></li>", esc(line));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn tracker_row(t: &TrackerEntry, j: usize, w: &Words, out: &mut String) {
    let url = match token_span(&t.url, t.token) {
        Some((before, token, after)) => {
            format!("{}<mark>{}</mark>{}", esc(before), esc(token), esc(after))
        }
        None => esc(&t.url),
    };
    let _ = writeln!(
        out,
        "<tr><td class=\"n\">{j}</td><td>{}</td><td><code>{url}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
        label(w.kinds, &t.kind),
        t.rule
            .as_deref()
            .map_or_else(|| w.none.to_string(), |r| format!("<code>{}</code>", esc(r))),
        t.vendor.as_deref().map_or_else(|| w.none.to_string(), esc),
        label(w.actions, &t.action)
    );
}

fn headers_appendix(d: &Dossier, w: &Words, letter: char, out: &mut String) {
    let _ = write!(
        out,
        "<section class=\"appendix\" id=\"headers\">\n<h2>{}</h2>\n<p>{}</p>\n",
        (w.appendix)(letter, w.headers_title),
        w.headers_intro
    );
    let n = d.messages.len();
    for (i, m) in d.messages.iter().enumerate() {
        let Some(h) = &m.headers else { continue };
        let i = i + 1;
        let _ = write!(
            out,
            "<h3 id=\"h{i}\">{letter}.{i} — <a href=\"#m{i}\">{}</a> — {}</h3>\n<pre>{}</pre>\n",
            (w.message_n)(i, n),
            esc(&m.date),
            esc(&h.replace("\r\n", "\n"))
        );
    }
    out.push_str("</section>\n");
}

fn originals_appendix(d: &Dossier, w: &Words, letter: char, out: &mut String) {
    let _ = write!(
        out,
        "<section class=\"appendix\" id=\"originals\">\n<h2>{}</h2>\n<p>{}</p>\n<table>\n\
         <thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        (w.appendix)(letter, w.originals_title),
        w.originals_intro,
        w.th_message,
        w.date,
        w.th_file,
        w.th_sha256
    );
    for (i, m) in d.messages.iter().enumerate() {
        let Some(f) = &m.original_file else { continue };
        let i = i + 1;
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#m{i}\">{i}</a></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&m.date),
            esc(f),
            m.original_sha256
                .as_deref()
                .map_or_else(|| w.not_known.to_string(), |h| format!("<code>{}</code>", esc(h)))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn texts_appendix(
    texts: Option<&[LegalText]>,
    w: &Words,
    lang: Lang,
    letter: char,
    out: &mut String,
) {
    let _ = writeln!(
        out,
        "<section class=\"appendix\" id=\"texts\">\n<h2>{}</h2>",
        (w.appendix)(letter, w.texts_title)
    );
    let Some(texts) = texts else {
        let _ = writeln!(out, "<p>{}</p>\n</section>", w.texts_unavailable);
        return;
    };
    let _ = writeln!(out, "<p>{}</p>", w.texts_intro);
    for t in texts {
        // The url is data: linked only when it is http(s), shown as text otherwise.
        let url = esc(&t.url);
        let source = if t.url.starts_with("https://") || t.url.starts_with("http://") {
            format!("<a href=\"{url}\">{url}</a>")
        } else {
            format!("<code>{url}</code>")
        };
        let _ = write!(
            out,
            "<article class=\"text\" id=\"text-{}\">\n<h3>{}</h3>\n<p class=\"note\">{}{colon}{} · {}{colon}{source}</p>\n\
             <p>{}</p>\n</article>\n",
            esc(&t.id),
            esc(t.title(lang)),
            w.date,
            esc(&t.date),
            w.official_source,
            esc(t.summary(lang)),
            colon = w.colon
        );
    }
    out.push_str("</section>\n");
}

/// Whether a message carries a per-recipient token anywhere (a highlighted tracker URL or a
/// remote resource flagged as carrying one).
fn has_token(m: &MessageEntry) -> bool {
    m.trackers
        .iter()
        .any(|t| token_span(&t.url, t.token).is_some())
        || m.remote.iter().any(|r| r.token)
}

/// `url` cut around the token: before, token, after. None when there is no token or its range
/// is empty, out of bounds, reversed or not on character boundaries.
fn token_span(url: &str, token: Option<(usize, usize)>) -> Option<(&str, &str, &str)> {
    let (start, end) = token?;
    if start >= end {
        return None;
    }
    Some((url.get(..start)?, url.get(start..end)?, url.get(end..)?))
}

/// The value, or "not known" for None, an empty string or `unknown` (the rules files' word).
fn known(v: Option<&str>) -> Option<&str> {
    v.map(str::trim)
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
}

fn opt(w: &Words, v: Option<&str>) -> String {
    known(v).map_or_else(|| w.not_known.to_string(), esc)
}

/// A country code as "name (CODE)" when the page knows its name, the code alone otherwise.
fn country(w: &Words, code: Option<&str>) -> String {
    let Some(code) = known(code) else {
        return w.not_known.to_string();
    };
    match w
        .countries
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
    {
        Some((c, name)) => format!("{name} ({c})"),
        None => esc(code),
    }
}

fn us(w: &Words, v: Option<bool>) -> &'static str {
    match v {
        Some(true) => w.us_yes,
        Some(false) => w.us_no,
        None => w.not_known,
    }
}

fn yes_no(w: &Words, v: bool) -> &'static str {
    if v {
        w.yes
    } else {
        w.no
    }
}

/// The page's word for a value of the data (a kind, an action…), or the value itself, escaped,
/// when the page has none.
fn label(table: &[(&str, &'static str)], key: &str) -> String {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map_or_else(|| esc(key), |(_, l)| (*l).to_string())
}

/// Text for HTML content and quoted attribute values. C0 controls (but tab, line feed and
/// carriage return) and DEL, which HTML does not allow as such, become their visible Control
/// Pictures (U+2400…), so nothing in the data disappears silently.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
            '\u{7f}' => out.push('\u{2421}'),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            esc("a\u{0}b\u{1b}c\u{7f}\td"),
            "a\u{2400}b\u{241b}c\u{2421}\td"
        );
    }

    #[test]
    fn token_span_refuses_bad_ranges() {
        assert_eq!(token_span("abcdef", Some((2, 4))), Some(("ab", "cd", "ef")));
        assert_eq!(token_span("abcdef", Some((4, 2))), None);
        assert_eq!(token_span("abcdef", Some((2, 2))), None);
        assert_eq!(token_span("abcdef", Some((2, 7))), None);
        assert_eq!(token_span("aé", Some((0, 2))), None);
        assert_eq!(token_span("aé", None), None);
    }

    #[test]
    fn unknown_reads_as_not_known() {
        assert_eq!(known(Some("unknown")), None);
        assert_eq!(known(Some(" ")), None);
        assert_eq!(known(Some("US")), Some("US"));
        assert_eq!(country(&FR, Some("us")), "États-Unis (US)");
        assert_eq!(country(&EN, Some("XX")), "XX");
    }
}
