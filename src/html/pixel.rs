//! Is this image a tracking beacon? An image goes when its URL is an open-tracking endpoint
//! (a rule's path), when it is remote and nobody can see it, or when it sits on a tracker host
//! and its URL carries a per-recipient token. A visible image with a static URL stays, even on
//! a tracker host: it tells the host at most that someone opened a copy, not who.
//!
//! An invisible image with a static URL that is named or used like a layout spacer
//! (`spacer.gif`, the same URL repeated) is still removed but counted as a spacer, not a pixel.

use crate::mail::rule::{Beacon, UrlRule, UrlRuleSet};
use crate::mail::token;
use crate::mail::url::UrlView;

/// Pixel detection by shape (remote images nobody can see), besides the open-tracking rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Heuristics {
    /// Judge remote images by their size and CSS at all. Off: only rule matches are pixels.
    pub pixels: bool,
    /// Largest width/height (CSS px) that still counts as invisible.
    pub pixel_max_px: f32,
}

impl Default for Heuristics {
    fn default() -> Self {
        Heuristics {
            pixels: true,
            pixel_max_px: 1.0,
        }
    }
}

/// Why an image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The rule id, or `heuristic:…` for an image caught by its shape alone.
    pub rule: String,
    pub vendor: Option<String>,
    pub by: By,
}

/// What made the image a beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// An open-tracking URL (a rule with `beacon = "path"` or `"any"`).
    Endpoint,
    /// Invisible, and its URL carries a per-recipient token.
    Token,
    /// Invisible, with a static URL: a beacon, or a layout spacer (see [`spacer`]).
    Invisible,
}

/// The size and visibility attributes of an image, as found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shape<'a> {
    pub width: Option<&'a str>,
    pub height: Option<&'a str>,
    /// The `style` attribute, entities decoded.
    pub style: Option<&'a str>,
    /// Inside an element that hides its content (`display:none`, `hidden`, …).
    pub hidden_ancestor: bool,
    /// A stylesheet of the part names the image's class or id: its inline `display:none`,
    /// `visibility:hidden`, `opacity:0` or `max-height:0` may be overridden there (responsive
    /// newsletters show a "mobile only" picture that way), so they do not make it invisible.
    /// Its sizes still count, except a zero width or height in the style (hiding as well).
    pub css_may_reveal: bool,
}

/// Classify the image at `src` (entities decoded). `cid:`, `data:` and relative URLs are never
/// beacons. With `heuristics.pixels` off only rules decide (a host-only rule still needs the
/// image to be invisible or tokenised: that is its own condition).
pub fn classify_with(
    src: &str,
    shape: Shape<'_>,
    open: &UrlRuleSet,
    heuristics: &Heuristics,
) -> Option<Verdict> {
    let view = UrlView::parse(src)?;
    let mut hidden = None;
    let mut hidden_once = || {
        *hidden.get_or_insert_with(|| {
            invisible_within(shape, heuristics.pixel_max_px)
                .or(shape.hidden_ancestor.then_some("heuristic:hidden-ancestor"))
        })
    };
    let mut token = None;
    let mut token_once = || *token.get_or_insert_with(|| per_recipient_token(&view));
    // An endpoint rule names the beacon best (Selligent's optiext path on its own host is
    // `selligent.open`, not the host rule), so it is looked for first.
    let matched: Vec<_> = open.matching(&view.subject).collect();
    let endpoint = matched
        .iter()
        .find(|r| matches!(r.beacon(), Beacon::Path | Beacon::Any));
    let verdict = |rule: &UrlRule, by| Verdict {
        rule: rule.id.clone(),
        vendor: rule.vendor.clone(),
        by,
    };
    if let Some(rule) = endpoint {
        return Some(verdict(rule, By::Endpoint));
    }
    if let Some(rule) = matched.first() {
        if token_once() {
            return Some(verdict(rule, By::Token));
        }
        if hidden_once().is_some() {
            return Some(verdict(rule, By::Invisible));
        }
    }
    if !heuristics.pixels {
        return None;
    }
    let why = hidden_once()?;
    Some(Verdict {
        rule: why.to_string(),
        vendor: None,
        by: if token_once() {
            By::Token
        } else {
            By::Invisible
        },
    })
}

/// A remote resource that is not an `<img>` (a CSS `url()`, `background=`, a `srcset`
/// candidate, a `<link>`): its size is not known, so only its URL decides: an open-tracking
/// endpoint, or a tracker host's URL with a per-recipient token.
pub fn beacon_url(url: &str, open: &UrlRuleSet) -> Option<Verdict> {
    let view = UrlView::parse(url)?;
    let matched: Vec<_> = open.matching(&view.subject).collect();
    let rule = matched
        .iter()
        .find(|r| matches!(r.beacon(), Beacon::Path | Beacon::Any))
        .map(|r| (r, By::Endpoint))
        .or_else(|| {
            let first = matched.first()?;
            per_recipient_token(&view).then_some((first, By::Token))
        })?;
    Some(Verdict {
        rule: rule.0.id.clone(),
        vendor: rule.0.vendor.clone(),
        by: rule.1,
    })
}

/// Does the URL carry something that can tell one recipient from another? The rule (query
/// values, opaque path segments and image names) is [`crate::mail::token`]'s, which the
/// dossier highlights with.
pub fn per_recipient_token(view: &UrlView) -> bool {
    token::token_in(&view.subject[view.host().len()..]).is_some()
}

/// Is an invisible image with a static URL (verdict [`By::Invisible`]) a layout spacer rather
/// than a beacon? When it is named like one (`spacer.gif`, `clear.gif`, `blank.png`, `x.png`,
/// …) or its URL is used for more than one image of the part (`uses` ≥ 2): a beacon is
/// fetched once per opening, a spacer is layout repeated wherever a gap is needed.
pub fn spacer(src: &str, uses: usize) -> bool {
    if uses >= 2 {
        return true;
    }
    let Some(view) = UrlView::parse(src) else {
        return false;
    };
    let path = &view.subject[view.host().len()..];
    let path = path.split('?').next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
    let Some((stem, ext)) = last.rsplit_once('.') else {
        return false;
    };
    if ext != "gif" && ext != "png" {
        return false;
    }
    let stem = stem.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_' || c == '-');
    matches!(
        stem,
        "spacer"
            | "space"
            | "spc"
            | "shim"
            | "blank"
            | "clear"
            | "clearpixel"
            | "clear_pixel"
            | "transparent"
            | "trans"
            | "transp"
            | "empty"
            | "x"
            | "s"
            | "t"
            | "dot"
            | "pix_clear"
    )
}

/// Does this shape hide the image? Both dimensions ≤ `max_px` (1 by default), or one ≤ it and
/// the other not given, or hidden by CSS. A 1×20 spacer or a 600×1 rule line is visible and
/// stays.
pub fn invisible_within(shape: Shape<'_>, max_px: f32) -> Option<&'static str> {
    let mut width = shape.width.and_then(length_px);
    let mut height = shape.height.and_then(length_px);
    if let Some(style) = shape.style {
        let reveal = shape.css_may_reveal;
        for (prop, value) in declarations(style) {
            // Only the properties judged below: their values lower-cased, no other (newsletter
            // images carry a dozen declarations each).
            const JUDGED: [&str; 7] = [
                "display",
                "visibility",
                "opacity",
                "max-height",
                "max-width",
                "width",
                "height",
            ];
            let Some(&prop) = JUDGED.iter().find(|p| p.eq_ignore_ascii_case(prop)) else {
                continue;
            };
            let value = value
                .trim()
                .trim_end_matches("!important")
                .trim()
                .to_ascii_lowercase();
            match prop {
                "display" if value == "none" && !reveal => return Some("heuristic:display-none"),
                "visibility" if (value == "hidden" || value == "collapse") && !reveal => {
                    return Some("heuristic:visibility-hidden")
                }
                "opacity" if value.parse::<f32>().is_ok_and(|o| o <= 0.0) && !reveal => {
                    return Some("heuristic:opacity-0")
                }
                "max-height" | "max-width"
                    if length_px(&value).is_some_and(|v| v <= 0.0) && !reveal =>
                {
                    return Some("heuristic:max-size-0")
                }
                // A zero size in CSS is hiding too (the "mobile only" pattern sets width:0).
                "width" | "height" if reveal && length_px(&value) == Some(0.0) => {}
                "width" => width = length_px(&value).or(width),
                "height" => height = length_px(&value).or(height),
                _ => {}
            }
        }
    }
    let tiny = |v: Option<f32>| v.is_some_and(|v| v <= max_px);
    match (width, height) {
        (Some(_), Some(_)) if tiny(width) && tiny(height) => Some("heuristic:1x1"),
        (Some(_), None) if tiny(width) => Some("heuristic:1x1"),
        (None, Some(_)) if tiny(height) => Some("heuristic:1x1"),
        _ => None,
    }
}

/// A length in CSS pixels from an attribute or CSS value: `1`, `1px`, `0`, ` 0px `.
/// Percentages, `auto` and other units are not lengths we judge.
fn length_px(v: &str) -> Option<f32> {
    let v = v.trim();
    let num = v
        .strip_suffix("px")
        .or_else(|| v.strip_suffix("PX"))
        .unwrap_or(v)
        .trim();
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    num.parse::<f32>().ok()
}

/// `prop: value` pairs of a style attribute (property names trimmed, in their own case).
fn declarations(style: &str) -> impl Iterator<Item = (&str, &str)> {
    style.split(';').filter_map(|decl| {
        let (prop, value) = decl.split_once(':')?;
        Some((prop.trim(), value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default heuristics' judgement.
    fn classify(src: &str, shape: Shape<'_>, open: &UrlRuleSet) -> Option<Verdict> {
        classify_with(src, shape, open, &Heuristics::default())
    }

    fn invisible(shape: Shape<'_>) -> Option<&'static str> {
        invisible_within(shape, 1.0)
    }

    fn shape<'a>(w: Option<&'a str>, h: Option<&'a str>, style: Option<&'a str>) -> Shape<'a> {
        Shape {
            width: w,
            height: h,
            style,
            hidden_ancestor: false,
            css_may_reveal: false,
        }
    }

    #[test]
    fn invisible_shapes() {
        assert!(invisible(shape(Some("1"), Some("1"), None)).is_some());
        assert!(invisible(shape(Some("1px"), Some("1px"), None)).is_some());
        assert!(invisible(shape(Some("0"), Some("0"), None)).is_some());
        assert!(invisible(shape(Some("1"), None, None)).is_some());
        assert!(invisible(shape(
            None,
            None,
            Some("display: none; width: 1px; height: 1px;")
        ))
        .is_some());
        assert!(invisible(shape(
            None,
            None,
            Some("height:1px !important;width:1px !important")
        ))
        .is_some());
        assert!(invisible(shape(None, None, Some("visibility:hidden"))).is_some());
        assert!(invisible(shape(None, None, Some("opacity:0"))).is_some());
        assert!(invisible(shape(None, None, Some("max-height:0px;overflow:hidden"))).is_some());
    }

    #[test]
    fn visible_shapes() {
        assert!(invisible(shape(Some("600"), Some("200"), None)).is_none());
        assert!(invisible(shape(Some("1"), Some("20"), None)).is_none());
        assert!(invisible(shape(Some("600"), Some("1"), None)).is_none());
        assert!(invisible(shape(Some("100%"), None, None)).is_none());
        assert!(invisible(shape(None, None, Some("opacity:0.8;display:block"))).is_none());
        assert!(invisible(shape(
            Some("1"),
            Some("1"),
            Some("width:300px;height:100px")
        ))
        .is_none());
        assert!(invisible(shape(None, None, None)).is_none());
    }

    #[test]
    fn cid_and_data_are_never_pixels() {
        let rules = &crate::core::rules::Rules::embedded().open;
        let tiny = shape(Some("1"), Some("1"), None);
        assert_eq!(classify("cid:pixel@x", tiny, rules), None);
        assert_eq!(classify("data:image/gif;base64,R0lGOD", tiny, rules), None);
        assert_eq!(classify("images/p.gif", tiny, rules), None);
        assert!(classify("https://cdn.example/p.gif", tiny, rules).is_some());
        assert!(classify("//cdn.example/p.gif", tiny, rules).is_some());
    }

    fn verdict(src: &str, w: &str, h: &str) -> Option<(String, By)> {
        let rules = crate::core::rules::Rules::embedded();
        classify(src, shape(Some(w), Some(h), None), &rules.open).map(|v| (v.rule, v.by))
    }

    #[test]
    fn tracker_host_keeps_visible_static_images() {
        // selligent.open-hosts says beacon = "invisible": the brand's logo on its ESP host stays.
        assert_eq!(
            verdict("https://brand.slgnt.eu/images/logo.png", "200", "80"),
            None
        );
        assert_eq!(
            verdict("https://brand.slgnt.eu/images/spacer.gif", "1", "20"),
            None
        );
        // ... an invisible one goes, and so does a visible one carrying a recipient token.
        assert_eq!(
            verdict("https://brand.slgnt.eu/images/px.gif", "1", "1"),
            Some(("selligent.open-hosts".into(), By::Invisible))
        );
        assert_eq!(
            verdict(
                "https://brand.slgnt.eu/r/i?ID=aZ93kd82jd92kdk29dkd9",
                "300",
                "100"
            ),
            Some(("selligent.open-hosts".into(), By::Token))
        );
        // The open-tracking path is a beacon whatever its size, and named by its own rule.
        assert_eq!(
            verdict(
                "https://brand.slgnt.eu/optiext/optiextension.dll?ID=x",
                "300",
                "100"
            ),
            Some(("selligent.open".into(), By::Endpoint))
        );
        // beacon = "any": a host that serves only beacons.
        assert_eq!(
            verdict("https://ea.pstmrk.it/anything.png", "600", "200"),
            Some(("postmark.open-host".into(), By::Endpoint))
        );
    }

    #[test]
    fn recipient_tokens() {
        let t = |u: &str| per_recipient_token(&UrlView::parse(u).expect("url"));
        assert!(t("https://h.example/i.gif?u=8d7f6e5d4c3b2a1f0e9d"));
        assert!(t("https://h.example/i.gif?e=jane%40example.net"));
        assert!(t("https://h.example/o/01HQ7ZK3M9V2XG5T8B4N6C1D0E"));
        assert!(t("https://h.example/i.gif?e=jane@example.net&x=1"));
        assert!(!t(
            "https://fonts.googleapis.com/css2?family=Inter:wght@400;700"
        ));
        assert!(!t("https://h.example/i.gif?at=@&x=a@b"));
        assert!(!t("https://fonts.gstatic.com/s/inter/v13/UcCO3FwrK3iLTeHuS_fvQtMwCp50KnMw2boKoduKmMEVuLyfAZ9hiA.woff2"));
        assert!(!t("https://h.example/images/logo.png"));
        assert!(!t(
            "https://h.example/9f8e7d6c-1234-4abc-8def-0123456789ab/logo.png"
        ));
        assert!(!t("https://h.example/img/hero.jpg?w=600&h=300"));
        assert!(!t(
            "https://h.example/a/b/photo-of-the-garden-in-spring.jpg"
        ));
    }

    #[test]
    fn spacers_by_name_or_repetition() {
        assert!(spacer("https://h.example/img/spacer.gif", 1));
        assert!(spacer("https://h.example/clear_1.png", 1));
        assert!(spacer("https://h.example/img/p.gif", 2));
        assert!(!spacer("https://h.example/img/p.gif", 1));
        assert!(!spacer("https://h.example/img/spacer.jpg", 1));
    }

    #[test]
    fn hidden_ancestor_makes_any_remote_image_invisible() {
        let rules = &crate::core::rules::Rules::embedded().open;
        let mut s = shape(Some("600"), Some("300"), None);
        assert_eq!(classify("https://cdn.example/a.jpg", s, rules), None);
        s.hidden_ancestor = true;
        let v = classify("https://cdn.example/a.jpg", s, rules).expect("hidden");
        assert_eq!(v.rule, "heuristic:hidden-ancestor");
        assert_eq!(classify("cid:a@x", s, rules), None);
    }
}
