//! Links: unwrap redirect tracking links offline, strip tracking parameters, recognise opaque
//! click trackers. No network request, ever: a destination is used only when it is written in
//! the link itself.

mod b64;
pub mod clearurls;
pub mod customerio;
pub mod mailgun;
pub mod mailjet;
pub mod mandrill;
pub mod params;
pub mod postmark;
pub mod proofpoint;
pub mod query;
pub mod ses;
pub mod sparkpost;
pub mod substack;
pub mod unwrap;

pub use unwrap::process;

use crate::mail::rule::UrlRuleSet;

/// The sections of the rules the link engine reads (the pipeline lends them).
#[derive(Debug, Clone, Copy)]
pub struct LinkRules<'a> {
    /// Links whose destination can be read out of the link itself.
    pub decoder: &'a UrlRuleSet,
    /// Click trackers that cannot be decoded offline.
    pub click: &'a UrlRuleSet,
    /// Tracking parameters stripped from every link.
    pub params: &'a params::ParamRules,
    /// A user's ClearURLs catalog, applied after our own rules.
    pub clearurls: Option<&'a clearurls::ClearUrls>,
}

use url::Url;

/// The decoders a `[[decoder]]` rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Mailgun,
    Mandrill,
    Ses,
    Postmark,
    Mailjet,
    CustomerIo,
    Substack,
    SparkPost,
    Proofpoint,
    /// Destination in a query parameter (the rule's `params`).
    Query,
}

impl Decoder {
    pub const NAMES: &'static [&'static str] = &[
        "mailgun",
        "mandrill",
        "ses",
        "postmark",
        "mailjet",
        "customerio",
        "substack",
        "sparkpost",
        "proofpoint",
        "query",
    ];

    pub fn from_name(name: &str) -> Option<Decoder> {
        Some(match name {
            "mailgun" => Decoder::Mailgun,
            "mandrill" => Decoder::Mandrill,
            "ses" => Decoder::Ses,
            "postmark" => Decoder::Postmark,
            "mailjet" => Decoder::Mailjet,
            "customerio" => Decoder::CustomerIo,
            "substack" => Decoder::Substack,
            "sparkpost" => Decoder::SparkPost,
            "proofpoint" => Decoder::Proofpoint,
            "query" => Decoder::Query,
            _ => return None,
        })
    }

    /// Read the destination out of `raw` (entity-decoded link text).
    pub fn decode(self, raw: &str, params: &[String]) -> Result<String, &'static str> {
        // Decoders that need query or path parsing get a parsed URL; the others read the raw
        // string, which the url crate would re-encode.
        let parsed = || Url::parse(raw.trim()).map_err(|_| "not a parseable URL");
        match self {
            Decoder::Mailgun => mailgun::decode(&parsed()?),
            Decoder::Mandrill => mandrill::decode(&parsed()?),
            Decoder::Ses => ses::decode(raw),
            Decoder::Postmark => postmark::decode(raw),
            Decoder::Mailjet => mailjet::decode(&parsed()?),
            Decoder::CustomerIo => customerio::decode(&parsed()?),
            Decoder::Substack => substack::decode(&parsed()?),
            Decoder::SparkPost => sparkpost::decode(raw),
            Decoder::Proofpoint => proofpoint::decode(raw),
            Decoder::Query => query::decode(&parsed()?, params),
        }
    }
}
