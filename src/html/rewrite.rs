//! The lol_html pass over one `text/html` part: pixels, remote fonts, tracker URLs in CSS.
//! One streaming pass, in the part's own charset; untouched bytes come out as they went in.

use crate::html::css::{self, UrlUse};
use crate::html::pixel::{self, By, Heuristics, Shape};
use crate::html::sheet_names::SheetNames;
use crate::html::srcset;
use crate::mail::entities::{decode, escape_attr};
use crate::mail::link::{LinkJudge, OpaqueLinks, MARK_TEXT, MARK_TITLE};
use crate::mail::outcome::{merge_remote, Action, Finding, Kind, Remote, Resource, SkipReason};
use crate::mail::rule::UrlRuleSet;
use crate::mail::url::UrlView;
use lol_html::html_content::{ContentType, Element};
use lol_html::{text, AsciiCompatibleEncoding, HtmlRewriter, MemorySettings, Selector, Settings};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// What the HTML engine needs for one part: where it is, how long and how much memory it may
/// take, the rules and settings it judges by, and who to ask about links.
pub struct PartCtx<'a> {
    /// MIME part path, for findings.
    pub part: &'a str,
    pub deadline: Instant,
    /// Memory lol_html may use for the part.
    pub memory: usize,
    /// Open-tracking rules (images, backgrounds, CSS url()).
    pub open: &'a UrlRuleSet,
    /// Remote font rules.
    pub font: &'a UrlRuleSet,
    pub heuristics: &'a Heuristics,
    /// Asked about every `<a href>` / `<area href>`; `None`: links are left alone.
    pub links: Option<LinkJudge<'a>>,
    pub opaque_links: OpaqueLinks,
}

struct State<'a> {
    ctx: &'a PartCtx<'a>,
    findings: Vec<Finding>,
    changed: bool,
    timed_out: bool,
    style_buf: String,
    /// The class and id names the part's stylesheets read so far mention, to tell whether a
    /// rule there may show an image its inline style hides.
    stylesheets: SheetNames,
    /// How many images of the part use each `src` (spacers are repeated, beacons are not).
    img_uses: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Findings (indices) of invisible images with static URLs: pixels unless [`pixel::spacer`]
    /// says spacer once the whole part has been read.
    maybe_spacers: Vec<usize>,
    /// The remote resources the part loads on opening (see [`Remote`]), merged as they grow.
    remote: Vec<Remote>,
    /// The current element's image URLs, as the first handler read them: (index in `remote`,
    /// kind, URL). The last handler marks those the others took out.
    element: Vec<(usize, Resource, String)>,
    /// The inventory holds as many distinct entries as it may: nothing more is noted.
    remote_full: bool,
}

impl State<'_> {
    /// Note a URL the HTML loads on opening; `None` when it is not remote (data:, cid:,
    /// relative) or the inventory is full.
    fn note(&mut self, url: &str, kind: Resource, removed: bool) -> Option<usize> {
        if self.remote_full {
            return None;
        }
        let view = UrlView::parse(url)?;
        if self.remote.len() >= 2 * REMOTE_BATCH {
            // Merged only between elements: `element` holds indices into the list.
            if !self.element.is_empty() {
                return None;
            }
            merge_remote(&mut self.remote);
            if self.remote.len() >= REMOTE_BATCH {
                self.remote_full = true;
                return None;
            }
        }
        self.remote.push(Remote {
            host: view.host().to_string(),
            kind,
            removed,
            token: pixel::per_recipient_token(&view),
            count: 1,
        });
        Some(self.remote.len() - 1)
    }

    fn record(
        &mut self,
        kind: Kind,
        context: &'static str,
        url: &str,
        rule: Option<(&str, Option<&str>)>,
    ) {
        let mut f = Finding::new(kind, Action::Removed);
        f.url = Some(url.to_string());
        f.context = Some(context);
        f.part = self.ctx.part.to_string();
        if let Some((id, vendor)) = rule {
            f.rule = Some(id.to_string());
            f.vendor = vendor.map(str::to_string);
        }
        self.findings.push(f);
        self.changed = true;
    }

    fn check_time(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if Instant::now() > self.ctx.deadline {
            self.timed_out = true;
            return Err("time limit".into());
        }
        Ok(())
    }

    /// Match a URL against one rule section; `(id, vendor)` of the rule.
    fn matches(set: &UrlRuleSet, url: &str) -> Option<(String, Option<String>)> {
        let view = UrlView::parse(url)?;
        set.first_match(&view.subject)
            .map(|r| (r.id.clone(), r.vendor.clone()))
    }

    /// Is this URL (not an `<img>`: no size to judge) an open beacon? `(id, vendor)`.
    fn beacon(&self, url: &str) -> Option<(String, Option<String>)> {
        pixel::beacon_url(url, self.ctx.open).map(|v| (v.rule, v.vendor))
    }

    /// CSS: decide whether a URL found in a stylesheet or style attribute must go.
    fn css_reject(&mut self, use_: UrlUse, url: &str, decl_context: &'static str) -> bool {
        let url = url.trim();
        let (kind, context, hit) = match use_ {
            UrlUse::Import => match Self::matches(self.ctx.font, url) {
                Some(hit) => (Kind::Font, "@import", Some(hit)),
                None => (Kind::Pixel, "@import", self.beacon(url)),
            },
            UrlUse::FontFace => (Kind::Font, "@font-face", Self::matches(self.ctx.font, url)),
            UrlUse::Declaration => (Kind::Pixel, decl_context, self.beacon(url)),
        };
        let resource = match (use_, kind) {
            (UrlUse::FontFace, _) | (UrlUse::Import, Kind::Font) => Resource::Font,
            (UrlUse::Import, _) => Resource::Stylesheet,
            (UrlUse::Declaration, _) => Resource::Css,
        };
        self.note(url, resource, hit.is_some());
        match hit {
            Some((id, vendor)) => {
                self.record(kind, context, url, Some((&id, vendor.as_deref())));
                true
            }
            None => false,
        }
    }

    /// CSS of an element another handler removed: its URLs are noted as removed, nothing is
    /// judged.
    fn css_gone(&mut self, css_text: &str, mode: css::Mode) {
        let _ = css::rewrite(css_text, mode, &mut |use_, url| {
            let resource = match use_ {
                UrlUse::FontFace => Resource::Font,
                UrlUse::Import => Resource::Stylesheet,
                UrlUse::Declaration => Resource::Css,
            };
            self.note(url.trim(), resource, true);
            false
        });
    }
}

/// Entries noted before they are merged; merged, at most this many are kept per part.
const REMOTE_BATCH: usize = crate::mail::outcome::REMOTE_MAX;

/// Input chunk size for lol_html.
const CHUNK: usize = 16 << 10;

type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The attributes that tell an image's size and visibility (the style entity-decoded).
struct ShapeAttrs {
    width: Option<String>,
    height: Option<String>,
    style: Option<String>,
}

impl ShapeAttrs {
    fn of(el: &Element) -> ShapeAttrs {
        ShapeAttrs {
            width: el.get_attribute("width"),
            height: el.get_attribute("height"),
            style: el.get_attribute("style").map(|s| decode(&s).into_owned()),
        }
    }

    fn shape(&self, hidden_ancestor: bool, css_may_reveal: bool) -> Shape<'_> {
        Shape {
            width: self.width.as_deref(),
            height: self.height.as_deref(),
            style: self.style.as_deref(),
            hidden_ancestor,
            css_may_reveal,
        }
    }
}

/// Does a stylesheet read so far name the element's class or id (`.name`, `#name`)? Then it
/// may override the element's inline hiding. A stylesheet after the element counts too in a
/// browser; newsletters put theirs in `<head>`.
fn named_in_stylesheets(el: &Element, sheets: &SheetNames) -> bool {
    if sheets.is_empty() {
        return false;
    }
    sheets.names_any(
        el.get_attribute("class").as_deref(),
        el.get_attribute("id").as_deref(),
    )
}

/// Elements that hide everything inside them: `hidden`, `display:none`, `visibility:hidden`,
/// `max-height:0` with `overflow:hidden` (the wrappers preheaders and hidden beacons use).
/// Only wrappers without `class` and `id`: a stylesheet rule with `!important` on a class
/// overrides an inline style, and responsive newsletters show "mobile only" blocks that way,
/// so a classed wrapper may well be visible. `style_lower`: the `style` attribute, ASCII
/// lower-cased, as written (entities are not decoded: what a CSS selector on it would see).
fn hides_content(el: &Element, style_lower: Option<&str>) -> bool {
    // The style first: it is read already, and most elements that have one do not hide
    // (each attribute lookup below costs lol_html an allocation).
    let style_hides = style_lower.is_some_and(|style| {
        let any = |decls: &[&str]| decls.iter().any(|d| style.contains(d));
        any(&[
            "display:none",
            "display: none",
            "visibility:hidden",
            "visibility: hidden",
        ]) || any(&["max-height:0", "max-height: 0"])
            && any(&["overflow:hidden", "overflow: hidden"])
    });
    (style_hides || el.has_attribute("hidden"))
        && !el.has_attribute("class")
        && !el.has_attribute("id")
}

/// Counts the hidden wrappers the parser is inside: one more at a wrapper's start tag, one
/// less when its end tag is reached or an enclosing end tag closes it (lol_html runs the end
/// tag handlers of the elements an end tag pops, as its own descendant selectors see them).
/// An `Rc` because end tag handlers outlive the handler borrows of the rewrite state.
type HiddenDepth = std::rc::Rc<std::cell::Cell<u32>>;

/// Hidden wrappers followed at once. lol_html looks through the end tag handlers of the open
/// elements at every end tag that closes one of them, so a document of thousands of nested
/// wrappers would cost their square. A wrapper met with this many open is inside hidden ones
/// already: not following it changes nothing (it closes before or with them).
const MAX_OPEN_WRAPPERS: u32 = 64;

fn enter_wrapper(el: &mut Element, depth: &HiddenDepth) -> HandlerResult {
    if !el.can_have_content() || depth.get() >= MAX_OPEN_WRAPPERS {
        return Ok(());
    }
    depth.set(depth.get() + 1);
    let depth = depth.clone();
    el.on_end_tag(Box::new(move |_end| {
        depth.set(depth.get().saturating_sub(1));
        Ok(())
    }))
}

/// `<img src>` and `<input type=image src>`. Registered twice: for every image, and for images
/// inside a hidden wrapper (`hidden` true); whichever runs second sees a removed element and
/// stops, and the hidden verdict is the wider one, so the order does not matter.
fn on_image(el: &mut Element, st: &RefCell<State>, hidden: bool) -> HandlerResult {
    let mut st = st.borrow_mut();
    st.check_time()?;
    let src_raw = el.get_attribute("src");
    if !hidden {
        if let Some(src) = &src_raw {
            let src = decode(src).trim().to_string();
            *st.img_uses.entry(src).or_default() += 1;
        }
    }
    if el.removed() {
        return Ok(());
    }
    let tag = el.tag_name();
    if tag == "input"
        && !el
            .get_attribute("type")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("image"))
    {
        return Ok(());
    }
    let Some(src_raw) = src_raw else {
        return Ok(());
    };
    let src = decode(&src_raw);
    let attrs = ShapeAttrs::of(el);
    let reveal = named_in_stylesheets(el, &st.stylesheets);
    let shape = attrs.shape(hidden, reveal);
    let context = if tag == "input" { "input" } else { "img" };
    let ctx = st.ctx;
    if let Some(v) = pixel::classify_with(&src, shape, ctx.open, ctx.heuristics) {
        if v.by == By::Invisible {
            let next = st.findings.len();
            st.maybe_spacers.push(next);
        }
        st.record(
            Kind::Pixel,
            context,
            src.trim(),
            Some((&v.rule, v.vendor.as_deref())),
        );
        el.remove();
    }
    Ok(())
}

/// `srcset` on `<img>` and `<picture><source>`: every candidate URL is judged like an `src`.
/// Candidates matching an open-tracking rule are dropped (the rest stay as written); an
/// invisible `<img>` whose `srcset` offers a remote image is a pixel whatever its `src`; a
/// `<source>` left without candidates goes.
fn on_srcset(el: &mut Element, st: &RefCell<State>, hidden: bool) -> HandlerResult {
    if el.removed() {
        return Ok(());
    }
    let mut st = st.borrow_mut();
    st.check_time()?;
    let Some(raw) = el.get_attribute("srcset") else {
        return Ok(());
    };
    let value = decode(&raw);
    let cands = srcset::candidates(&value);
    let is_img = el.tag_name() == "img";
    if is_img && st.ctx.heuristics.pixels {
        let remote = cands.iter().find(|c| UrlView::parse(c.url).is_some());
        let attrs = ShapeAttrs::of(el);
        let shape = attrs.shape(hidden, named_in_stylesheets(el, &st.stylesheets));
        let max_px = st.ctx.heuristics.pixel_max_px;
        let why = pixel::invisible_within(shape, max_px)
            .or(hidden.then_some("heuristic:hidden-ancestor"));
        if let (Some(c), Some(why)) = (remote, why) {
            st.record(Kind::Pixel, "srcset", c.url.trim(), Some((why, None)));
            el.remove();
            return Ok(());
        }
    }
    let mut drop = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        if let Some((id, vendor)) = st.beacon(c.url) {
            st.record(Kind::Pixel, "srcset", c.url, Some((&id, vendor.as_deref())));
            drop.push(i);
        }
    }
    if drop.is_empty() {
        return Ok(());
    }
    if drop.len() < cands.len() {
        let kept = srcset::without(&value, &cands, &drop);
        el.set_attribute("srcset", &escape_attr(&kept))?;
    } else if is_img {
        el.remove_attribute("srcset");
    } else {
        el.remove();
    }
    Ok(())
}

fn on_background(el: &mut Element, st: &RefCell<State>) -> HandlerResult {
    let mut st = st.borrow_mut();
    st.check_time()?;
    let Some(raw) = el.get_attribute("background") else {
        return Ok(());
    };
    let url = decode(&raw);
    if el.removed() {
        st.note(url.trim(), Resource::Background, true);
        return Ok(());
    }
    let beacon = st.beacon(&url);
    st.note(url.trim(), Resource::Background, beacon.is_some());
    if let Some((id, vendor)) = beacon {
        st.record(
            Kind::Pixel,
            "background",
            url.trim(),
            Some((&id, vendor.as_deref())),
        );
        el.remove_attribute("background");
    }
    Ok(())
}

/// A `style` attribute that holds `url(` (the caller looked, once, for hidden wrappers too).
fn on_style_attr(el: &mut Element, st: &RefCell<State>) -> HandlerResult {
    let mut st = st.borrow_mut();
    st.check_time()?;
    let Some(raw) = el.get_attribute("style") else {
        return Ok(());
    };
    let style = decode(&raw);
    if el.removed() {
        st.css_gone(&style, css::Mode::Declarations);
        return Ok(());
    }
    let new = css::rewrite(&style, css::Mode::Declarations, &mut |u, url| {
        st.css_reject(u, url, "style-attr")
    });
    if let Some(new) = new {
        if new.trim().is_empty() {
            el.remove_attribute("style");
        } else {
            el.set_attribute("style", &escape_attr(&new))?;
        }
    }
    Ok(())
}

fn on_link(el: &mut Element, st: &RefCell<State>) -> HandlerResult {
    let mut st = st.borrow_mut();
    st.check_time()?;
    let Some(raw) = el.get_attribute("href") else {
        return Ok(());
    };
    let href = decode(&raw);
    let stylesheet = el
        .get_attribute("rel")
        .is_some_and(|r| r.to_ascii_lowercase().contains("stylesheet"));
    if let Some((id, vendor)) = State::matches(st.ctx.font, &href) {
        st.note(href.trim(), Resource::Font, true);
        st.record(
            Kind::Font,
            "link",
            href.trim(),
            Some((&id, vendor.as_deref())),
        );
        el.remove();
    } else if let Some((id, vendor)) = st.beacon(&href) {
        st.note(href.trim(), Resource::Stylesheet, true);
        st.record(
            Kind::Pixel,
            "link",
            href.trim(),
            Some((&id, vendor.as_deref())),
        );
        el.remove();
    } else if stylesheet {
        st.note(href.trim(), Resource::Stylesheet, false);
    }
    Ok(())
}

/// The image URLs of `<img>`, `<input type=image>`, `<picture><source>` and `<video>`, read
/// before any other handler runs (`open`), and marked taken out after they all ran.
fn inventory(el: &mut Element, st: &RefCell<State>, open: bool) -> HandlerResult {
    let mut st = st.borrow_mut();
    if open {
        st.element.clear();
        let tag = el.tag_name();
        let image = tag == "img"
            || tag == "input"
                && el
                    .get_attribute("type")
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("image"));
        let mut urls: Vec<(Resource, String)> = Vec::new();
        if image {
            if let Some(src) = el.get_attribute("src") {
                urls.push((Resource::Image, decode(&src).trim().to_string()));
            }
        }
        if tag == "img" || tag == "source" {
            if let Some(set) = el.get_attribute("srcset") {
                let set = decode(&set);
                for c in srcset::candidates(&set) {
                    urls.push((Resource::Srcset, c.url.trim().to_string()));
                }
            }
        }
        if tag == "video" {
            if let Some(poster) = el.get_attribute("poster") {
                urls.push((Resource::Poster, decode(&poster).trim().to_string()));
            }
        }
        for (kind, url) in urls {
            if let Some(i) = st.note(&url, kind, false) {
                st.element.push((i, kind, url));
            }
        }
        return Ok(());
    }
    let gone = el.removed();
    let srcset_now = (!gone)
        .then(|| el.get_attribute("srcset"))
        .flatten()
        .map(|s| decode(&s).into_owned())
        .unwrap_or_default();
    let kept: HashSet<&str> = srcset::candidates(&srcset_now)
        .iter()
        .map(|c| c.url.trim())
        .collect();
    let src_now = !gone && el.has_attribute("src");
    let element = std::mem::take(&mut st.element);
    for (i, kind, url) in &element {
        let removed = gone
            || match kind {
                Resource::Image => !src_now,
                Resource::Srcset => !kept.contains(url.as_str()),
                _ => false,
            };
        if let Some(entry) = st.remote.get_mut(*i) {
            entry.removed |= removed;
        }
    }
    Ok(())
}

fn on_link_href(el: &mut Element, st: &RefCell<State>) -> HandlerResult {
    let mut st = st.borrow_mut();
    // Links left alone (`links = false`): nothing to read.
    let Some(judge) = st.ctx.links else {
        return Ok(());
    };
    st.check_time()?;
    let Some(raw) = el.get_attribute("href") else {
        return Ok(());
    };
    let href = decode(&raw);
    let Some(res) = judge(&href) else {
        return Ok(());
    };
    let mut f = Finding::new(Kind::Link, res.action);
    f.url = Some(href.trim().to_string());
    f.context = Some(if el.tag_name() == "area" { "area" } else { "a" });
    f.part = st.ctx.part.to_string();
    f.rule = res.rule;
    f.vendor = res.vendor;
    f.chain = res.chain;
    f.detail = res.detail;
    if matches!(res.action, Action::Unwrapped | Action::Cleaned) {
        if let Some(new) = &res.new_url {
            el.set_attribute("href", &escape_attr(new))?;
            st.changed = true;
        }
        f.new_url = res.new_url;
    }
    // A link still going through a click tracker (kept, or unwrapped down to an inner wrapper
    // that cannot be read) is marked, once.
    if res.still_tracked && st.ctx.opaque_links == OpaqueLinks::Mark && f.context == Some("a") {
        let already = el
            .get_attribute("title")
            .is_some_and(|t| decode(&t).starts_with(MARK_TITLE));
        if !already {
            let title = match &f.vendor {
                Some(v) => format!("{MARK_TITLE} ({v} logs the click)"),
                None => format!("{MARK_TITLE} (the click is logged)"),
            };
            el.set_attribute("title", &escape_attr(&title))?;
            el.after(MARK_TEXT, ContentType::Text);
            st.changed = true;
            if f.action == Action::KeptOpaque {
                f.action = Action::Marked;
            }
        }
    }
    st.findings.push(f);
    Ok(())
}

/// The selectors of the handlers, parsed once per process (parsing them was a tenth of the
/// cost of a small part).
struct Selectors {
    /// Elements whose image URLs go into the inventory: the images and srcsets judged, the
    /// ones inside a hidden wrapper too.
    inventory: Selector,
    /// Elements that may hide what they enclose, and elements with inline CSS. Hidden
    /// wrappers are told apart in Rust and followed with an end tag handler: seven descendant
    /// selectors matched by lol_html cost more than the rest of the rewrite's selectors.
    wrappers: Selector,
    background: Selector,
    link: Selector,
    anchors: Selector,
}

fn selectors() -> &'static Selectors {
    static SELECTORS: std::sync::OnceLock<Selectors> = std::sync::OnceLock::new();
    SELECTORS.get_or_init(|| {
        #[allow(clippy::expect_used)]
        let parse = |s: &str| s.parse::<Selector>().expect("a valid built-in selector");
        Selectors {
            inventory: parse("img, input[src], source[srcset], video[poster]"),
            wrappers: parse("[style], [hidden]"),
            background: parse("[background]"),
            link: parse("link[href]"),
            anchors: parse("a[href], area[href]"),
        }
    })
}

/// `element!` with a selector parsed beforehand.
macro_rules! handler {
    ($selector:expr, $handler:expr) => {{
        #[inline(always)]
        const fn type_hint<'h, T, H: lol_html::HandlerTypes>(h: T) -> T
        where
            T: FnMut(&mut lol_html::html_content::Element<'_, '_, H>) -> HandlerResult + 'h,
        {
            h
        }
        (
            std::borrow::Cow::Borrowed($selector),
            lol_html::ElementContentHandlers::default().element(type_hint($handler)),
        )
    }};
}

/// Rewrite one decoded HTML part. `Ok(None)`: nothing to change (findings such as opaque
/// links are still appended). On error nothing is appended.
pub fn rewrite(
    html: &[u8],
    encoding: &'static encoding_rs::Encoding,
    ctx: &PartCtx<'_>,
    findings: &mut Vec<Finding>,
    remote: &mut Vec<Remote>,
) -> Result<Option<Vec<u8>>, SkipReason> {
    let mut out = Vec::with_capacity(html.len());
    let input = Input::Whole(html);
    let changed = rewrite_to(
        input,
        |c: &[u8]| out.extend_from_slice(c),
        encoding,
        ctx,
        findings,
        remote,
    )?;
    Ok(changed.then_some(out))
}

/// The decoded HTML of a part: whole, or in pieces that are freed as soon as they are read
/// (a large part is then never held whole twice, decoded and rewritten).
pub enum Input<'a> {
    Whole(&'a [u8]),
    Pieces(Vec<Vec<u8>>),
}

/// [`rewrite`], the output handed to `sink` as it is written; `Ok(true)` when it differs from
/// the input (what `sink` got is then the rewritten part; otherwise it is to be dropped).
pub fn rewrite_to(
    input: Input<'_>,
    sink: impl FnMut(&[u8]),
    encoding: &'static encoding_rs::Encoding,
    ctx: &PartCtx<'_>,
    findings: &mut Vec<Finding>,
    remote: &mut Vec<Remote>,
) -> Result<bool, SkipReason> {
    let Some(enc) = AsciiCompatibleEncoding::new(encoding) else {
        return Err(SkipReason::UnsupportedCharset);
    };
    let state = RefCell::new(State {
        ctx,
        findings: Vec::new(),
        changed: false,
        timed_out: false,
        style_buf: String::new(),
        stylesheets: SheetNames::default(),
        img_uses: HashMap::default(),
        maybe_spacers: Vec::new(),
        remote: Vec::new(),
        element: Vec::new(),
        remote_full: false,
    });
    let st = &state;
    let sel = selectors();
    let hidden = HiddenDepth::default();
    let wrappers_depth = hidden.clone();
    let hidden = &hidden;
    let settings = Settings {
        element_content_handlers: vec![
            // The images, their srcsets and the inventory of what they load, in one handler
            // (one selector fewer for lol_html to match at every tag than one handler each).
            handler!(&sel.inventory, move |el| {
                inventory(el, st, true)?;
                let tag = el.tag_name();
                let (img, input) = (tag == "img", tag == "input");
                let src = (img || input) && el.has_attribute("src");
                let srcset = (img || tag == "source") && el.has_attribute("srcset");
                if src {
                    on_image(el, st, false)?;
                }
                if srcset {
                    on_srcset(el, st, false)?;
                }
                // Images inside a hidden wrapper, judged once more as hidden (by what the
                // element has after the judgements above).
                if hidden.get() > 0 {
                    if (img || input) && el.has_attribute("src") {
                        on_image(el, st, true)?;
                    }
                    if img && el.has_attribute("srcset") {
                        on_srcset(el, st, true)?;
                    }
                }
                Ok(())
            }),
            handler!(&sel.background, move |el| on_background(el, st)),
            handler!(&sel.wrappers, move |el| {
                st.borrow_mut().check_time()?;
                let style = el.get_attribute("style").map(|s| s.to_ascii_lowercase());
                if hides_content(el, style.as_deref()) {
                    enter_wrapper(el, &wrappers_depth)?;
                }
                match style {
                    Some(lower) if lower.contains("url(") => on_style_attr(el, st),
                    _ => Ok(()),
                }
            }),
            handler!(&sel.link, move |el| on_link(el, st)),
            handler!(&sel.anchors, move |el| on_link_href(el, st)),
            handler!(&sel.inventory, move |el| inventory(el, st, false)),
            text!("style", move |t| {
                let mut s = st.borrow_mut();
                s.style_buf.push_str(t.as_str());
                if !t.last_in_text_node() {
                    t.remove();
                    return Ok(());
                }
                s.check_time()?;
                let css_text = std::mem::take(&mut s.style_buf);
                s.stylesheets.add(&css_text);
                let new = css::rewrite(&css_text, css::Mode::Stylesheet, &mut |u, url| {
                    s.css_reject(u, url, "style-block")
                });
                t.replace(new.as_deref().unwrap_or(&css_text), ContentType::Html);
                Ok(())
            }),
        ],
        encoding: enc,
        memory_settings: MemorySettings {
            max_allowed_memory_usage: ctx.memory,
            ..MemorySettings::new()
        },
        strict: false,
        ..Settings::new()
    };
    let result = {
        let mut rewriter = HtmlRewriter::new(settings, sink);
        // Fed in chunks, as a stream: lol_html then buffers only what spans chunks, and the
        // memory limit bounds that. The time limit is checked before each chunk too: some
        // hostile shapes cost lol_html itself more than linear time with no handler running
        // (stray end tags against thousands of open elements, one tag of millions of
        // attributes split over many chunks).
        let mut write = |c: &[u8]| {
            if Instant::now() > ctx.deadline {
                st.borrow_mut().timed_out = true;
                return Err(lol_html::errors::RewritingError::ContentHandlerError(
                    "time limit".into(),
                ));
            }
            rewriter.write(c)
        };
        match input {
            Input::Whole(html) => html.chunks(CHUNK).try_for_each(&mut write),
            Input::Pieces(pieces) => pieces
                .into_iter()
                .try_for_each(|p| p.chunks(CHUNK).try_for_each(&mut write)),
        }
        .and_then(|()| rewriter.end())
    };
    let mut state = state.into_inner();
    if let Err(e) = result {
        return Err(if state.timed_out {
            SkipReason::TimeLimit
        } else if matches!(e, lol_html::errors::RewritingError::MemoryLimitExceeded(_)) {
            SkipReason::MemoryLimit
        } else {
            SkipReason::RewriteError
        });
    }
    for &i in &state.maybe_spacers {
        let f = &mut state.findings[i];
        let url = f.url.as_deref().unwrap_or("");
        if pixel::spacer(url, state.img_uses.get(url).copied().unwrap_or(0)) {
            f.kind = Kind::Spacer;
        }
    }
    findings.extend(state.findings);
    remote.extend(state.remote);
    Ok(state.changed)
}
