//! The class and id names a part's stylesheets mention (`.name`, `#name`), to tell whether a
//! rule there may show an image its inline style hides.
//!
//! A name counts as mentioned when the stylesheet text holds the mark followed by it, even as
//! the start of a longer name (`.hide-mobile` mentions `hide`): the lookup errs on the side of
//! keeping an image. Looked up in an ordered set of the names after each mark, built as the
//! stylesheets are read, so an image costs a few comparisons per class however long the
//! stylesheets and however many classes it lists (searching the text for each class made an
//! image of 100 000 classes under a 256 KB stylesheet take 26 s). A name with a byte that
//! cannot be part of a CSS identifier here is searched for in the text, a few per image.

use std::collections::BTreeSet;

/// How much stylesheet text is read for names.
pub const MAX_TEXT: usize = 256 << 10;

/// Names searched for in the text (not in the sets) per element; past that, a name counts as
/// mentioned.
const TEXT_SEARCHES: usize = 8;

#[derive(Default)]
pub struct SheetNames {
    text: String,
    classes: BTreeSet<Box<str>>,
    ids: BTreeSet<Box<str>>,
}

/// A byte of a name as the sets hold them: runs of these after a mark.
fn name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c >= 0x80
}

impl SheetNames {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Read one stylesheet (a `<style>` element's text); nothing once [`MAX_TEXT`] is reached.
    pub fn add(&mut self, css: &str) {
        if self.text.len() + css.len() > MAX_TEXT {
            return;
        }
        self.text.push_str(css);
        let b = css.as_bytes();
        for (at, &mark) in b.iter().enumerate() {
            let set = match mark {
                b'.' => &mut self.classes,
                b'#' => &mut self.ids,
                _ => continue,
            };
            let from = at + 1;
            let len = b[from..].iter().take_while(|&&c| name_byte(c)).count();
            if len > 0 && !set.contains(&css[from..from + len]) {
                set.insert(css[from..from + len].into());
            }
        }
    }

    /// Does any stylesheet name one of the element's classes (whitespace-separated) or its id?
    pub fn names_any(&self, classes: Option<&str>, id: Option<&str>) -> bool {
        if self.is_empty() {
            return false;
        }
        let mut searches = 0;
        let classes = classes.unwrap_or_default().split_ascii_whitespace();
        let id = id.map(str::trim).filter(|id| !id.is_empty());
        classes
            .map(|c| (b'.', c))
            .chain(id.map(|i| (b'#', i)))
            .any(|(mark, name)| self.mentions(mark, name, &mut searches))
    }

    fn mentions(&self, mark: u8, name: &str, searches: &mut usize) -> bool {
        if name.bytes().all(name_byte) {
            let set = if mark == b'.' {
                &self.classes
            } else {
                &self.ids
            };
            return set
                .range::<str, _>((std::ops::Bound::Included(name), std::ops::Bound::Unbounded))
                .next()
                .is_some_and(|n| n.starts_with(name));
        }
        *searches += 1;
        if *searches > TEXT_SEARCHES {
            return true;
        }
        in_text(&self.text, mark, name)
    }
}

/// Does `text` hold `mark` followed by `name`? What the sets stand for, for names they cannot
/// hold.
fn in_text(text: &str, mark: u8, name: &str) -> bool {
    let text = text.as_bytes();
    memchr::memmem::find_iter(text, name.as_bytes()).any(|at| at > 0 && text[at - 1] == mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(css: &[&str]) -> SheetNames {
        let mut s = SheetNames::default();
        for c in css {
            s.add(c);
        }
        s
    }

    #[test]
    fn classes_and_ids_as_the_text_holds_them() {
        let css = "@media (max-width:600px){ .mobile-only{display:block!important} }\
                   td.hide-mobile, #Hero img { display:none } a.btn:hover{color:red}\
                   .caf\u{e9}{x:y} .a.b{} p#x.y{}";
        let s = sheet(&[css]);
        for name in [
            "mobile-only",
            "mobile",
            "hide",
            "hide-mobile",
            "Hero",
            "btn",
            "caf\u{e9}",
            "a",
            "b",
            "y",
            "x",
            "hover",
            "only",
            "td",
            "img",
            "600px",
            "Hero img",
            "btn:hover",
            "a.b",
            "mobile-only{display",
            "z",
        ] {
            for mark in [b'.', b'#'] {
                let mut n = 0;
                let want = in_text(css, mark, name);
                assert_eq!(
                    s.mentions(mark, name, &mut n),
                    want,
                    "{} {name:?}",
                    mark as char
                );
            }
        }
    }

    #[test]
    fn element_lookup() {
        let s = sheet(&[".show{display:block}", "#top{}"]);
        assert!(s.names_any(Some("a  show b"), None));
        assert!(s.names_any(Some("a"), Some(" top ")));
        assert!(!s.names_any(Some("a b"), Some("bottom")));
        assert!(!s.names_any(None, Some("  ")));
        assert!(!SheetNames::default().names_any(Some("show"), None));
    }

    #[test]
    fn many_classes_many_names() {
        let mut css = String::new();
        for i in 0..10_000 {
            css.push_str(&format!(".c{i}{{color:red}}"));
        }
        let s = sheet(&[&css]);
        let classes: Vec<String> = (0..100_000).map(|i| format!("k{i}")).collect();
        assert!(!s.names_any(Some(&classes.join(" ")), None));
        assert!(s.names_any(Some(&format!("{} c9999", classes.join(" "))), None));
        // Names the sets cannot hold are searched for a few times, then count as named.
        let odd: Vec<String> = (0..10).map(|i| format!("x:{i}")).collect();
        assert!(!s.names_any(Some(&odd[..8].join(" ")), None));
        assert!(s.names_any(Some(&odd.join(" ")), None));
    }

    #[test]
    fn stops_reading_at_the_limit() {
        let big = "a{}".repeat(MAX_TEXT / 3);
        let s = sheet(&[&big, ".late{}"]);
        assert!(!s.names_any(Some("late"), None));
    }
}
