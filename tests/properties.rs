//! Properties over generated messages:
//! - a message without trackers comes out byte-identical (and no header is added);
//! - a message with trackers comes out without them, re-parses with the same structure, and a
//!   second run changes nothing (idempotence).

mod common;

use common::*;
use proptest::prelude::*;
use trackless::{neutralise, Policy};

#[derive(Debug, Clone)]
enum Block {
    Para(String),
    Link(String),
    Image { n: u32, w: u32, h: u32 },
    CidTiny,
    DataTiny,
    Style,
    Background(u32),
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{1,12}",
        Just("caf\u{e9}".to_string()),
        Just("\u{20ac}42".to_string()),
        Just("&amp;".to_string()),
        Just("Tom &amp; Jerry".to_string()),
        Just("\u{65e5}\u{672c}".to_string()),
        Just("=3D".to_string()),
        Just("From the start".to_string()),
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        prop::collection::vec(word(), 1..30).prop_map(|w| Block::Para(w.join(" "))),
        "[a-z]{1,10}".prop_map(Block::Link),
        (0u32..1000, 2u32..800, 2u32..600).prop_map(|(n, w, h)| Block::Image { n, w, h }),
        Just(Block::CidTiny),
        Just(Block::DataTiny),
        Just(Block::Style),
        (0u32..100).prop_map(Block::Background),
    ]
}

fn render(blocks: &[Block], trackers: &[u32]) -> String {
    let mut html = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n");
    if trackers.contains(&1) {
        html.push_str("<link href=\"https://fonts.googleapis.com/css?family=Roboto:400,700\" rel=\"stylesheet\">\n");
    }
    html.push_str("<style>body { font-family: Roboto, Arial, sans-serif; }\n");
    if trackers.contains(&2) {
        html.push_str(
            "@import url('https://fonts.googleapis.com/css2?family=Lato&display=swap');\n",
        );
    }
    html.push_str("</style></head>\n<body>\n<table width=\"600\"><tr><td>\n");
    for (i, b) in blocks.iter().enumerate() {
        match b {
            Block::Para(t) => html.push_str(&format!("<p>{t}</p>\n")),
            Block::Link(p) => html.push_str(&format!(
                "<a href=\"https://www.shop.example/{p}?id=7&amp;ref=mail\">Shop {p}</a>\n"
            )),
            Block::Image { n, w, h } => html.push_str(&format!(
                "<img src=\"https://cdn.shop.example/img/{n}.png\" width=\"{w}\" height=\"{h}\" alt=\"\">\n"
            )),
            Block::CidTiny => html.push_str("<img src=\"cid:spacer@shop\" width=\"1\" height=\"1\">\n"),
            Block::DataTiny => html.push_str(
                "<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" width=\"1\" height=\"1\">\n",
            ),
            Block::Style => html.push_str(
                "<div style=\"background-image:url(https://cdn.shop.example/bg.png); color:#333\">x</div>\n",
            ),
            Block::Background(n) => html.push_str(&format!(
                "<table background=\"https://cdn.shop.example/bg{n}.jpg\"><tr><td>y</td></tr></table>\n"
            )),
        }
        if i == 0 && trackers.contains(&3) {
            html.push_str("<img src=\"https://email.shop.example/o/eJwNyTEOgCAMAMC3sDJQQnDoYwVqQlQgpZr4e73xcjtl\" width=\"1\" height=\"1\">\n");
        }
    }
    if trackers.contains(&4) {
        html.push_str("<img alt=\"\" src=\"https://vk39fk6q.r.eu-west-1.awstrack.me/I0/0102019a-1b2c/abcDEF=331\" style=\"display: none; width: 1px; height: 1px;\">\n");
    }
    if trackers.contains(&6) {
        let form =
            "l=https%3A%2F%2Fwww.shop.example%2Fboots%3Fcolor%3Dred%26utm_source%3Dmg&e=1&h=abc";
        let z = miniz_oxide::deflate::compress_to_vec_zlib(form.as_bytes(), 6);
        let tok = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, z);
        html.push_str(&format!(
            "<a href=\"https://email.shop.example/c/{tok}\">Boots</a>\n"
        ));
    }
    if trackers.contains(&7) {
        html.push_str("<a href=\"https://www.shop.example/p?id=1&amp;utm_source=news&amp;utm_medium=email#utm_campaign=x\">P</a>\n");
    }
    if trackers.contains(&5) {
        html.push_str(
            "<td background=\"https://u1.ct.sendgrid.net/wf/open?upn=abc-2Bdef\">z</td>\n",
        );
    }
    html.push_str("</td></tr></table></body></html>\n");
    html
}

#[derive(Debug, Clone)]
struct Shape {
    crlf: bool,
    html_cte: &'static str,
    structure: u8,
    blocks: Vec<Block>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        any::<bool>(),
        prop_oneof![
            Just("7bit"),
            Just("8bit"),
            Just("quoted-printable"),
            Just("base64")
        ],
        0u8..5,
        prop::collection::vec(block(), 1..25),
    )
        .prop_map(|(crlf, html_cte, structure, blocks)| Shape {
            crlf,
            html_cte,
            structure,
            blocks,
        })
}

fn build(s: &Shape, trackers: &[u32]) -> Vec<u8> {
    let nl = if s.crlf { "\r\n" } else { "\n" };
    let html = render(&s.blocks, trackers);
    let html_part = leaf("text/html; charset=\"utf-8\"", s.html_cte, &html, nl);
    let text_part = leaf(
        "text/plain; charset=utf-8",
        "quoted-printable",
        "Autumn sale\nhttps://www.shop.example/sale?id=7\n",
        nl,
    );
    let attachment = format!(
        "Content-Type: application/pdf; name=\"a.pdf\"{nl}Content-Disposition: attachment; filename=\"a.pdf\"{nl}Content-Transfer-Encoding: base64{nl}{nl}{}",
        b64(&(0u8..=255).cycle().take(700).collect::<Vec<u8>>(), nl)
    );
    let alt = multipart(
        "alternative",
        "alt-b0undary",
        &[text_part, html_part.clone()],
        nl,
    );
    let entity = match s.structure {
        0 => html_part,
        1 => alt,
        2 => multipart("mixed", "mix-b0undary", &[alt, attachment], nl),
        3 => {
            let inner = message(&std_headers(), &alt, nl);
            let inner = String::from_utf8(inner).expect("utf8");
            multipart(
                "mixed",
                "fwd-b0undary",
                &[
                    leaf("text/plain", "7bit", "See below.", nl),
                    format!("Content-Type: message/rfc822{nl}{nl}{inner}"),
                ],
                nl,
            )
        }
        _ => {
            let inner = message(&std_headers(), &alt, nl);
            multipart(
                "mixed",
                "fwd64-b0undary",
                &[
                    leaf("text/plain", "7bit", "Forwarded, encoded.", nl),
                    format!(
                        "Content-Type: message/rfc822{nl}Content-Transfer-Encoding: base64{nl}{nl}{}",
                        b64(&inner, nl)
                    ),
                ],
                nl,
            )
        }
    };
    message(&std_headers(), &entity, nl)
}

fn part_count(raw: &[u8]) -> usize {
    fn count(m: &mail_parser::Message<'_>) -> usize {
        m.parts
            .iter()
            .map(|p| match &p.body {
                mail_parser::PartType::Message(inner) => 1 + count(inner),
                _ => 1,
            })
            .sum()
    }
    count(
        &mail_parser::MessageParser::new()
            .parse(raw)
            .expect("re-parses"),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn clean_mail_is_byte_identical(s in shape()) {
        let raw = build(&s, &[]);
        let policy = Policy::default();
        let out = neutralise(&raw, &policy);
        // A caught panic also comes back unchanged and byte-identical: ask for it.
        prop_assert!(invariants::no_internal_error(&out).is_ok(), "{:?}", out.findings);
        prop_assert!(!out.changed, "findings: {:?}", out.findings);
        prop_assert_eq!(out.bytes.as_ref(), raw.as_slice());
        prop_assert!(out.header.is_none());
    }

    #[test]
    fn trackers_go_and_second_run_is_a_no_op(
        s in shape(),
        trackers in prop::sample::subsequence(vec![1u32, 2, 3, 4, 5, 6, 7], 1..=7),
    ) {
        let raw = build(&s, &trackers);
        let policy = Policy::default();
        let once = neutralise(&raw, &policy);
        prop_assert!(invariants::no_internal_error(&once).is_ok(), "{:?}", once.findings);
        prop_assert!(once.changed);
        let copies = if s.blocks.is_empty() { 0 } else { 1 };
        let expected_pixels = trackers.iter().filter(|&&t| t == 4 || t == 5).count()
            + if trackers.contains(&3) { copies } else { 0 };
        let expected_fonts = trackers.iter().filter(|&&t| t == 1 || t == 2).count();
        prop_assert_eq!(once.counts.pixels as usize, expected_pixels);
        prop_assert_eq!(once.counts.fonts as usize, expected_fonts);
        // Same MIME structure, trackers gone from the decoded text.
        prop_assert_eq!(part_count(&once.bytes), part_count(&raw));
        let text = all_text(&once.bytes);
        if trackers.contains(&6) {
            prop_assert!(text.contains("https://www.shop.example/boots?color=red\""), "mailgun link not unwrapped");
        }
        for needle in ["fonts.googleapis.com", "/o/eJ", "/c/eJ", "awstrack.me", "/wf/open", "utm_"] {
            prop_assert!(!text.contains(needle), "{} still in output", needle);
        }
        let has_images = s.blocks.iter().any(|b| matches!(b, Block::Image { .. }));
        prop_assert!(!has_images || text.contains("cdn.shop.example/img/"), "visible image removed");
        // Exactly one X-Trackless header, in the top-level header block.
        let head_end = once.bytes.windows(4).position(|w| w == b"\r\n\r\n")
            .or_else(|| once.bytes.windows(2).position(|w| w == b"\n\n")).expect("header block");
        let head = String::from_utf8_lossy(&once.bytes[..head_end]);
        prop_assert_eq!(head.matches("X-Trackless:").count(), 1);
        // Idempotence.
        let twice = neutralise(&once.bytes, &policy);
        prop_assert!(invariants::no_internal_error(&twice).is_ok(), "{:?}", twice.findings);
        prop_assert!(!twice.changed, "second run found {:?}", twice.findings);
        // And every other property of a rewrite (bytes outside rewritten parts kept).
        prop_assert!(invariants::only_rewrites_differ(&raw, &once.bytes).is_ok(), "{:?}", invariants::only_rewrites_differ(&raw, &once.bytes));
        prop_assert_eq!(twice.bytes.as_ref(), once.bytes.as_ref());
    }
}

#[test]
fn forged_header_does_not_skip_processing() {
    let s = Shape {
        crlf: true,
        html_cte: "quoted-printable",
        structure: 1,
        blocks: vec![Block::Para("hello".into())],
    };
    let mut raw = b"X-Trackless: pixels=0; fonts=0\r\n".to_vec();
    raw.extend_from_slice(&build(&s, &[4]));
    let out = neutralise(&raw, &Policy::default());
    assert!(out.changed);
    assert_eq!(out.counts.pixels, 1);
    let text = String::from_utf8_lossy(&out.bytes);
    assert_eq!(text.matches("X-Trackless:").count(), 1);
    assert!(text.contains("X-Trackless: pixels=1; fonts=0"));
}

/// A destination of the kind newsletters link to: any path, query and fragment characters
/// (including ones that need escaping inside a wrapper), sometimes with tracking parameters.
fn destination() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http")],
        "[a-z]{1,10}(\\.[a-z]{2,6}){1,2}",
        "(/[A-Za-z0-9._~!$'()*+,;=:@%-]{0,12}){0,4}",
        proptest::option::of("[A-Za-z0-9_]{1,8}=[A-Za-z0-9 &/?:%+\u{e9}\u{20ac}-]{0,16}"),
        any::<bool>(),
        proptest::option::of("[A-Za-z0-9-]{1,10}"),
    )
        .prop_map(|(scheme, host, path, query, utm, frag)| {
            let mut q: Vec<String> = Vec::new();
            if let Some(kv) = query {
                let (k, v) = kv.split_once('=').expect("k=v");
                q.push(format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                ));
            }
            if utm {
                q.push("utm_source=newsletter".into());
            }
            let mut u = format!("{scheme}://{host}{path}");
            if u.ends_with("//") || path.is_empty() {
                u.push('/');
            }
            if !q.is_empty() {
                u.push('?');
                u.push_str(&q.join("&"));
            }
            if let Some(f) = frag {
                u.push('#');
                u.push_str(&f);
            }
            u
        })
}

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn b64url(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b)
}

/// `dest` wrapped the way one redirector writes it (index `kind`), then `mangle` applied:
/// 0 keeps it valid, 1 cuts it short, 2 appends junk.
fn wrapped(kind: usize, dest: &str) -> String {
    match kind {
        0 => format!(
            "https://www.google.com/url?q={}&sa=D&source=editors",
            pct(dest)
        ),
        1 => format!(
            "https://eur01.safelinks.protection.outlook.com/?url={}&data=05%7C01%7C&reserved=0",
            pct(dest)
        ),
        2 => {
            let form = format!("l={}&e=1&h=abc", pct(dest));
            let z = miniz_oxide::deflate::compress_to_vec_zlib(form.as_bytes(), 6);
            format!("https://email.shop.example/c/{}", b64url(&z))
        }
        3 => format!(
            "https://a1b2c3.r.us-east-1.awstrack.me/L0/{}/1/0100018c-0000/abcDEF=331",
            pct(dest)
        ),
        4 => {
            let json = serde_json::json!({"e": dest, "p": 1, "s": 2}).to_string();
            format!(
                "https://substack.com/redirect/2/{}.sig",
                b64url(json.as_bytes())
            )
        }
        _ => {
            // Wrappers nest: Safe Links around a Google redirect.
            let inner = wrapped(0, dest);
            wrapped(1, &inner)
        }
    }
}

/// Any link through the pipeline: no panic, and what comes out is either nothing (kept as
/// is) or an absolute http(s) URL. The links are real wrappers around generated destinations,
/// valid or damaged, so that most cases reach the decoders; the test counts how many did and
/// fails if the generator stops reaching them.
#[test]
fn unwrapper_yields_input_or_http_url() {
    use proptest::test_runner::{Config, TestRunner};
    let rules = trackless::Rules::embedded();
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    let unwrapped = std::cell::Cell::new(0usize);
    let cases = std::cell::Cell::new(0usize);
    let strategy = (0usize..6, destination(), 0u8..3, "\\PC{0,40}");
    runner
        .run(&strategy, |(kind, dest, mangle, junk)| {
            cases.set(cases.get() + 1);
            let mut link = wrapped(kind, &dest);
            match mangle {
                1 => link.truncate(link.len() * 2 / 3),
                2 => link.push_str(&junk),
                _ => {}
            }
            let Some(res) = trackless::internals::process(&link, &rules.links()) else {
                return Ok(());
            };
            if let Some(new) = &res.new_url {
                let u = url::Url::parse(new).map_err(|e| {
                    proptest::test_runner::TestCaseError::fail(format!("{new}: {e}"))
                })?;
                prop_assert!(matches!(u.scheme(), "http" | "https"), "{}", new);
                prop_assert!(u.host_str().is_some());
                if res.action == trackless::Action::Unwrapped {
                    unwrapped.set(unwrapped.get() + 1);
                    if mangle == 0 {
                        // A valid wrapper gives back its destination, without tracking
                        // parameters.
                        let want = dest
                            .replace("?utm_source=newsletter", "")
                            .replace("&utm_source=newsletter", "");
                        let want_url = url::Url::parse(&want).expect("destination parses");
                        prop_assert_eq!(u.host_str(), want_url.host_str(), "{} from {}", new, link);
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // Valid wrappers are a third of the cases; most of them must reach the decoders.
    assert!(
        unwrapped.get() * 4 >= cases.get(),
        "only {} of {} links were unwrapped",
        unwrapped.get(),
        cases.get()
    );
}
