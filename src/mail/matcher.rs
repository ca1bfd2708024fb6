//! A set of rule patterns matched in one pass, answering which of them match.
//!
//! The embedded rules' sets are DFAs built by `build.rs` when trackless is compiled and loaded
//! in microseconds: a `trackless filter` started per message (Sieve, procmail, a Postfix pipe)
//! no longer compiles ~150 regexes before reading its first byte. A set that differs from the
//! embedded one (a user's rules file) is compiled at run time, with the same syntax.
//!
//! The syntax, on both paths: patterns over bytes with Unicode off, so `\s`, `\w`, `\b` and
//! case-insensitive matching are ASCII-only and `.` is any byte but `\n`. Hosts, paths and
//! header tokens are ASCII; the Unicode tables only cost start-up time.

use regex_automata::dfa::{dense, Automaton};
use regex_automata::{Anchored, Input, PatternSet as Hits};

/// How a set is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    pub case_insensitive: bool,
    /// Matches must start at the beginning of the text (URL subjects).
    pub anchored: bool,
}

/// A compiled set of patterns.
#[derive(Clone)]
pub struct PatternSet {
    inner: Inner,
    len: usize,
}

#[derive(Clone)]
enum Inner {
    Empty,
    Embedded(&'static dense::DFA<&'static [u32]>, Anchored),
    Compiled(regex::bytes::RegexSet),
}

impl std::fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Empty => "empty",
            Inner::Embedded(..) => "embedded",
            Inner::Compiled(_) => "compiled",
        };
        write!(f, "PatternSet({} patterns, {kind})", self.len)
    }
}

/// One automaton built by `build.rs` (see `embedded.rs` in the build output).
struct Embedded {
    syntax: Syntax,
    patterns: &'static [&'static str],
    bytes: &'static [u8],
}

/// Bytes of a serialised DFA, aligned for reading as `u32`s in place.
#[repr(C, align(4))]
struct Aligned<B: ?Sized> {
    bytes: B,
}

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

impl PatternSet {
    /// The set of `patterns` (a match reports their indices). Uses the embedded automaton when
    /// one was built for exactly these patterns and syntax.
    pub fn new(patterns: &[String], syntax: Syntax) -> Result<PatternSet, regex::Error> {
        let len = patterns.len();
        if len == 0 {
            return Ok(PatternSet {
                inner: Inner::Empty,
                len,
            });
        }
        if let Some(dfa) = embedded(patterns, syntax) {
            let anchored = if syntax.anchored {
                Anchored::Yes
            } else {
                Anchored::No
            };
            return Ok(PatternSet {
                inner: Inner::Embedded(dfa, anchored),
                len,
            });
        }
        let set = regex::bytes::RegexSetBuilder::new(patterns)
            .unicode(false)
            .case_insensitive(syntax.case_insensitive)
            .size_limit(64 << 20)
            .build()?;
        Ok(PatternSet {
            inner: Inner::Compiled(set),
            len,
        })
    }

    pub fn empty() -> PatternSet {
        PatternSet {
            inner: Inner::Empty,
            len: 0,
        }
    }

    /// Built from an embedded automaton rather than compiled now.
    pub fn is_embedded(&self) -> bool {
        matches!(self.inner, Inner::Embedded(..))
    }

    pub fn is_match(&self, text: &[u8]) -> bool {
        match &self.inner {
            Inner::Empty => false,
            Inner::Embedded(dfa, anchored) => dfa
                .try_search_fwd(&Input::new(text).anchored(*anchored).earliest(true))
                .is_ok_and(|m| m.is_some()),
            Inner::Compiled(set) => set.is_match(text),
        }
    }

    /// Indices of the patterns that match `text`, ascending.
    pub fn matches(&self, text: &[u8]) -> Vec<usize> {
        match &self.inner {
            Inner::Empty => Vec::new(),
            Inner::Embedded(dfa, anchored) => {
                let mut hits = Hits::new(dfa.pattern_len());
                let input = Input::new(text).anchored(*anchored);
                // Only a DFA with quit bytes or a Unicode word boundary can fail; ours has
                // neither.
                if dfa
                    .try_which_overlapping_matches(&input, &mut hits)
                    .is_err()
                {
                    return Vec::new();
                }
                hits.iter().map(|p| p.as_usize()).collect()
            }
            Inner::Compiled(set) => set.matches(text).into_iter().collect(),
        }
    }
}

/// The embedded automaton for exactly these patterns, loaded on first use.
fn embedded(patterns: &[String], syntax: Syntax) -> Option<&'static dense::DFA<&'static [u32]>> {
    use std::sync::OnceLock;
    static LOADED: [OnceLock<Option<dense::DFA<&'static [u32]>>>; EMBEDDED_LEN] =
        [const { OnceLock::new() }; EMBEDDED_LEN];
    let at = EMBEDDED.iter().position(|e| {
        e.syntax == syntax
            && e.patterns.len() == patterns.len()
            && e.patterns
                .iter()
                .zip(patterns)
                .all(|(a, b)| *a == b.as_str())
    })?;
    LOADED[at]
        .get_or_init(|| {
            // SAFETY: the bytes are a DFA that build.rs serialised, for this target's
            // endianness, with the regex-automata this crate is built with (one version in
            // Cargo.lock), embedded 4-aligned by include_bytes! at compile time; nothing from
            // outside reaches them. The checked `from_bytes` reads every transition (~0.5 ms
            // and 2.5 MB of page faults per process); the test below runs it on each automaton.
            unsafe { dense::DFA::from_bytes_unchecked(EMBEDDED[at].bytes) }
                .ok()
                .map(|(dfa, _)| dfa)
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn compiled_sets_answer_like_a_regex_set() {
        let ci = Syntax {
            case_insensitive: true,
            anchored: false,
        };
        let set = PatternSet::new(&strings(&[r"mailgun\.org\b", r"^<?bounce", r":SG\s*$"]), ci)
            .expect("compiles");
        assert!(!set.is_embedded());
        assert_eq!(set.matches(b"from so1.MAILGUN.org (x)"), vec![0]);
        assert_eq!(set.matches(b"<bounce+1@mailgun.org>"), vec![0, 1]);
        assert_eq!(set.matches(b"1:2:SG  "), vec![2]);
        assert!(set.matches(b"mailgun.organic").is_empty());
        assert!(!set.is_match(b"nothing here"));
    }

    #[test]
    fn every_embedded_automaton_loads_and_agrees_with_the_compiled_set() {
        let samples: &[&[u8]] = &[
            b"u123.ct.sendgrid.net/wf/open?upn=abc",
            b"email.mg.example.com/o/eJx",
            b"abc.r.eu-west-1.awstrack.me/I0/0101/x=1",
            b"fonts.googleapis.com/css2?family=Lato",
            b"from o1.email.sendgrid.net (o1.email.sendgrid.net [167.89.1.2])",
            b"<0102018f-abc@email.amazonses.com>",
            b"1.eu-west-1.xyz=:AmazonSES",
            b"www.example.org/page",
        ];
        assert!(!EMBEDDED.is_empty());
        for e in &EMBEDDED {
            let patterns: Vec<String> = e.patterns.iter().map(|p| p.to_string()).collect();
            let (checked, _) = dense::DFA::from_bytes(e.bytes).expect("a valid automaton");
            assert_eq!(checked.pattern_len(), patterns.len());
            let dfa = embedded(&patterns, e.syntax).expect("the automaton loads");
            assert_eq!(dfa.pattern_len(), patterns.len());
            let fast = PatternSet::new(&patterns, e.syntax).expect("embedded");
            assert!(fast.is_embedded());
            let slow = PatternSet {
                inner: Inner::Compiled(
                    regex::bytes::RegexSetBuilder::new(&patterns)
                        .unicode(false)
                        .case_insensitive(e.syntax.case_insensitive)
                        .size_limit(64 << 20)
                        .build()
                        .expect("compiles"),
                ),
                len: patterns.len(),
            };
            for s in samples {
                assert_eq!(
                    fast.matches(s),
                    slow.matches(s),
                    "{:?} on {s:?}",
                    e.patterns
                );
                assert_eq!(fast.is_match(s), slow.is_match(s));
            }
        }
    }
}
