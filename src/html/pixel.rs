//! Is this image a tracking pixel? By rule (a known open-tracking URL shape, whatever its size)
//! or by shape (a remote image nobody can see).

use crate::core::policy::Heuristics;
use crate::rules::{Rules, UrlView};

/// Why an image counts as a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Matched an open-tracking rule.
    Rule { id: String, vendor: Option<String> },
    /// Remote and invisible; the string names the heuristic (`heuristic:1x1`, …).
    Invisible(&'static str),
}

/// The size and visibility attributes of an image, as found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shape<'a> {
    pub width: Option<&'a str>,
    pub height: Option<&'a str>,
    /// The `style` attribute, entities decoded.
    pub style: Option<&'a str>,
}

/// Classify the image at `src` (entities decoded). `cid:`, `data:` and relative URLs are never
/// pixels; remote ones are if a rule matches or if they cannot be seen.
pub fn classify(src: &str, shape: Shape<'_>, rules: &Rules) -> Option<Verdict> {
    classify_with(src, shape, rules, &Heuristics::default())
}

/// [`classify`] with the shape heuristics of the policy (off, or another size threshold).
pub fn classify_with(
    src: &str,
    shape: Shape<'_>,
    rules: &Rules,
    heuristics: &Heuristics,
) -> Option<Verdict> {
    let view = UrlView::parse(src)?;
    if let Some(rule) = rules.open.first_match(&view.subject) {
        return Some(Verdict::Rule {
            id: rule.id.clone(),
            vendor: rule.vendor.clone(),
        });
    }
    if !heuristics.pixels {
        return None;
    }
    invisible_within(shape, heuristics.pixel_max_px).map(Verdict::Invisible)
}

/// Does this shape hide the image? Both dimensions ≤ 1, or one ≤ 1 and the other not given,
/// or hidden by CSS. A 1×20 spacer or a 600×1 rule line is visible and stays.
pub fn invisible(shape: Shape<'_>) -> Option<&'static str> {
    invisible_within(shape, 1.0)
}

/// [`invisible`] with another size threshold: both dimensions ≤ `max_px` count as invisible.
pub fn invisible_within(shape: Shape<'_>, max_px: f32) -> Option<&'static str> {
    let mut width = shape.width.and_then(length_px);
    let mut height = shape.height.and_then(length_px);
    if let Some(style) = shape.style {
        for (prop, value) in declarations(style) {
            let value = value
                .trim()
                .trim_end_matches("!important")
                .trim()
                .to_ascii_lowercase();
            match prop.as_str() {
                "display" if value == "none" => return Some("heuristic:display-none"),
                "visibility" if value == "hidden" || value == "collapse" => {
                    return Some("heuristic:visibility-hidden")
                }
                "opacity" if value.parse::<f32>().is_ok_and(|o| o <= 0.0) => {
                    return Some("heuristic:opacity-0")
                }
                "max-height" | "max-width" if length_px(&value).is_some_and(|v| v <= 0.0) => {
                    return Some("heuristic:max-size-0")
                }
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

/// `prop: value` pairs of a style attribute (lowercased property names).
fn declarations(style: &str) -> impl Iterator<Item = (String, &str)> {
    style.split(';').filter_map(|decl| {
        let (prop, value) = decl.split_once(':')?;
        Some((prop.trim().to_ascii_lowercase(), value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape<'a>(w: Option<&'a str>, h: Option<&'a str>, style: Option<&'a str>) -> Shape<'a> {
        Shape {
            width: w,
            height: h,
            style,
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
        let rules = Rules::embedded();
        let tiny = shape(Some("1"), Some("1"), None);
        assert_eq!(classify("cid:pixel@x", tiny, &rules), None);
        assert_eq!(classify("data:image/gif;base64,R0lGOD", tiny, &rules), None);
        assert_eq!(classify("images/p.gif", tiny, &rules), None);
        assert!(classify("https://cdn.example/p.gif", tiny, &rules).is_some());
        assert!(classify("//cdn.example/p.gif", tiny, &rules).is_some());
    }
}
