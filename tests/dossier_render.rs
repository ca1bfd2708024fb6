//! The dossier renderer (issue 20) on a hand-built dossier: three messages from a French shop,
//! two sent through SendGrid and one built by Mailchimp, with pixels, wrapped links carrying
//! per-recipient tokens, Google Fonts and a CloudFront image. Compared byte for byte with the
//! reviewed golden pages in tests/golden/dossier/. After a deliberate change:
//! UPDATE_GOLDEN=1 cargo test --test dossier_render, then review the diff of the golden files.

use std::collections::BTreeSet;
use std::path::Path;
use trackless::dossier::{
    self, Dossier, EspEntry, Lang, MessageEntry, RemoteEntry, Sender, TrackerEntry,
};

/// The byte range of the value of `key` (up to the next `&` or the end) in `url`.
fn token_after(url: &str, key: &str) -> Option<(usize, usize)> {
    let start = url.find(key)? + key.len();
    let end = url[start..].find('&').map_or(url.len(), |i| start + i);
    Some((start, end))
}

fn tracker(
    kind: &str,
    url: &str,
    token_key: Option<&str>,
    rule: &str,
    vendor: Option<&str>,
    action: &str,
) -> TrackerEntry {
    TrackerEntry {
        kind: kind.into(),
        url: url.into(),
        token: token_key.and_then(|k| token_after(url, k)),
        rule: Some(rule.into()),
        vendor: vendor.map(Into::into),
        action: action.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn remote(
    host: &str,
    kind: &str,
    removed: bool,
    operator: Option<&str>,
    country: Option<&str>,
    us_exposure: Option<bool>,
    token: bool,
    count: usize,
) -> RemoteEntry {
    RemoteEntry {
        host: host.into(),
        kind: kind.into(),
        removed,
        operator: operator.map(Into::into),
        country: country.map(Into::into),
        us_exposure,
        token,
        count,
    }
}

fn google_fonts() -> Vec<RemoteEntry> {
    vec![
        remote(
            "fonts.googleapis.com",
            "stylesheet",
            true,
            Some("Google Fonts"),
            Some("US"),
            Some(true),
            false,
            1,
        ),
        remote(
            "fonts.gstatic.com",
            "font",
            true,
            Some("Google Fonts"),
            Some("US"),
            Some(true),
            false,
            2,
        ),
    ]
}

const FONT_URL: &str =
    "https://fonts.googleapis.com/css2?family=Playfair+Display:wght@400;700&display=swap";

fn shop() -> Dossier {
    let sg_open = "https://u1234567.ct.sendgrid.net/wf/open?upn=u001.aBcD3fGh1jKlMnOpQrStUvWxYz0123456789-2FqRsT";
    let sg_click = "https://u1234567.ct.sendgrid.net/ls/click?upn=u001.Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-2BdCbA-3D-3D&sig=Q1w2E3";
    let mut first_remote = vec![remote(
        "u1234567.ct.sendgrid.net",
        "image",
        true,
        Some("SendGrid"),
        Some("US"),
        Some(true),
        true,
        1,
    )];
    first_remote.extend(google_fonts());
    first_remote.push(remote(
        "d1a2b3c4d5e6f7.cloudfront.net",
        "image",
        false,
        Some("Amazon Web Services"),
        Some("US"),
        Some(true),
        false,
        6,
    ));
    first_remote.push(remote(
        "img.boutique-lumiere.example",
        "background",
        false,
        None,
        None,
        None,
        false,
        1,
    ));
    let first = MessageEntry {
        date: "2026-10-06 08:30:00".into(),
        subject: Some("Nouvelle collection : -20 % ce week-end".into()),
        message_id: Some("<20261006083000.4f1c2a@boutique-lumiere.example>".into()),
        message_id_sha256: Some(
            "6d1f0c3b9a4e2f8d7c6b5a49382716050f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        ),
        original_sha256: Some(
            "0a9b8c7d6e5f40312233445566778899aabbccddeeff00112233445566778899".into(),
        ),
        original_file: Some("2026-10-06-message-1.eml".into()),
        trackers: vec![
            tracker("pixel", sg_open, Some("upn="), "sendgrid.open", Some("SendGrid"), "removed"),
            tracker(
                "link",
                sg_click,
                Some("upn="),
                "sendgrid.click",
                Some("SendGrid"),
                "kept-opaque",
            ),
            tracker("font", FONT_URL, None, "font.google", Some("Google Fonts"), "removed"),
        ],
        remote: first_remote,
        esp_evidence: vec![
            "received: Received: from o1.ptr1234.boutique-lumiere.example (o1.ptr1234.boutique-lumiere.example [149.72.10.20]) by mx.example.net".into(),
            "header: X-SG-EID: u001.kX2lL3mM4nN5oO6pP7qQ8".into(),
            "dkim: d=sendgrid.net".into(),
        ],
        headers: Some(
            "Return-Path: <bounces+1234567-abcd-client=example.net@em1234.boutique-lumiere.example>\r\n\
             Received: from o1.ptr1234.boutique-lumiere.example (o1.ptr1234.boutique-lumiere.example [149.72.10.20])\r\n\
             \tby mx.example.net with ESMTPS id 4f1c2a; Tue, 6 Oct 2026 08:30:02 +0000\r\n\
             DKIM-Signature: v=1; a=rsa-sha256; d=sendgrid.net; s=smtpapi; h=from:subject\r\n\
             From: \"Boutique Lumière\" <newsletter@boutique-lumiere.example>\r\n\
             To: client@example.net\r\n\
             Subject: =?UTF-8?Q?Nouvelle_collection_:_-20_%_ce_week-end?=\r\n\
             Message-ID: <20261006083000.4f1c2a@boutique-lumiere.example>\r\n\
             X-SG-EID: u001.kX2lL3mM4nN5oO6pP7qQ8\r\n"
                .into(),
        ),
    };
    let sg_open2 =
        "https://u1234567.ct.sendgrid.net/wf/open?upn=u001.Hh7Gg6Ff5Ee4Dd3Cc2Bb1Aa0-2FzYxW";
    let mut second_remote = vec![remote(
        "u1234567.ct.sendgrid.net",
        "image",
        true,
        Some("SendGrid"),
        Some("US"),
        Some(true),
        true,
        1,
    )];
    second_remote.extend(google_fonts());
    let second = MessageEntry {
        date: "2026-10-20 08:30:00".into(),
        subject: None,
        message_id: None,
        message_id_sha256: Some(
            "b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1".into(),
        ),
        original_sha256: None,
        original_file: None,
        trackers: vec![
            tracker(
                "pixel",
                sg_open2,
                Some("upn="),
                "sendgrid.open",
                Some("SendGrid"),
                "removed",
            ),
            tracker(
                "font",
                FONT_URL,
                None,
                "font.google",
                Some("Google Fonts"),
                "removed",
            ),
        ],
        remote: second_remote,
        esp_evidence: vec!["dkim: d=sendgrid.net".into()],
        headers: None,
    };
    let mc_open = "https://boutique-lumiere.us21.list-manage.com/track/open.php?u=0a1b2c3d4e5f6a7b8c9d0e1f2&id=9f8e7d6c5b&e=4a3b2c1d0e";
    let mc_click = "https://boutique-lumiere.us21.list-manage.com/track/click?u=0a1b2c3d4e5f6a7b8c9d0e1f2&id=1a2b3c4d5e&e=4a3b2c1d0e";
    let third = MessageEntry {
        date: "2026-11-03 17:05:00".into(),
        subject: Some("Vos avantages fidélité 🎁 « jusqu’au 10 novembre »".into()),
        message_id: Some("<0a1b2c3d4e5f6a7b8c9d0e1f2.9f8e7d6c5b.20261103170500.abcdef0123@mail57.suw13.mcdlv.net>".into()),
        message_id_sha256: None,
        original_sha256: Some(
            "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100".into(),
        ),
        original_file: Some("2026-11-03-message-3.eml".into()),
        trackers: vec![
            tracker("pixel", mc_open, Some("&e="), "mailchimp.open", Some("Mailchimp"), "removed"),
            tracker("link", mc_click, Some("&e="), "mailchimp.click", Some("Mailchimp"), "kept-opaque"),
            tracker(
                "link",
                "https://www.boutique-lumiere.example/fidelite?utm_source=newsletter&utm_medium=email&utm_campaign=fidelite-nov",
                None,
                "utm",
                None,
                "cleaned",
            ),
        ],
        remote: vec![
            remote(
                "boutique-lumiere.us21.list-manage.com",
                "image",
                true,
                Some("Mailchimp"),
                Some("US"),
                Some(true),
                true,
                1,
            ),
            remote(
                "mcusercontent.com",
                "image",
                false,
                Some("Mailchimp"),
                Some("US"),
                Some(true),
                false,
                4,
            ),
        ],
        esp_evidence: vec![
            "header: X-Mailer: Mailchimp Mailer - **CID9f8e7d6c5b0a1b2c3d4e**".into(),
            "return-path: Return-Path: <bounce-mc.us21_123456.789-client=example.net@mail57.suw13.mcdlv.net>".into(),
            "dkim: d=mcdlv.net".into(),
        ],
        headers: Some(
            "Return-Path: <bounce-mc.us21_123456.789-client=example.net@mail57.suw13.mcdlv.net>\n\
             From: Boutique Lumière <newsletter@boutique-lumiere.example>\n\
             Subject: =?UTF-8?B?Vm9zIGF2YW50YWdlcyBmaWTDqWxpdMOp?=\n\
             X-Mailer: Mailchimp Mailer - **CID9f8e7d6c5b0a1b2c3d4e**\n"
                .into(),
        ),
    };
    Dossier {
        sender: Sender {
            address: "newsletter@boutique-lumiere.example".into(),
            domain: "boutique-lumiere.example".into(),
            organisation: Some("Boutique Lumière SAS".into()),
        },
        period: Some(("2026-10-06".into(), "2026-11-03".into())),
        messages: vec![first, second, third],
        esps: vec![
            EspEntry {
                name: "SendGrid".into(),
                layer: "carrier".into(),
                confidence: "high".into(),
                legal_entity: Some("Twilio Inc.".into()),
                jurisdiction: Some("US".into()),
                parent: Some("Twilio Inc.".into()),
                parent_jurisdiction: Some("US".into()),
                us_exposure: Some(true),
                messages: 2,
            },
            EspEntry {
                name: "Mailchimp".into(),
                layer: "platform".into(),
                confidence: "medium".into(),
                legal_entity: Some("The Rocket Science Group LLC".into()),
                jurisdiction: Some("US".into()),
                parent: Some("Intuit Inc.".into()),
                parent_jurisdiction: Some("US".into()),
                us_exposure: Some(true),
                messages: 1,
            },
        ],
        generated_from: "trackless 0.1.0, log /var/lib/trackless/log.db".into(),
        keep_headers: true,
    }
}

/// Compare with the golden file, or rewrite it when UPDATE_GOLDEN=1.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/dossier")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (UPDATE_GOLDEN=1 cargo test --test dossier_render writes it)",
            path.display()
        )
    });
    if expected != actual {
        let (n, want, got) = expected
            .lines()
            .map(Some)
            .chain(std::iter::repeat(None))
            .zip(actual.lines().map(Some).chain(std::iter::repeat(None)))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i + 1, a, b))
            .unwrap_or((0, None, None));
        panic!(
            "{name} differs from the golden file at line {n}:\n  golden: {}\n  actual: {}\n\
             (after a deliberate change: UPDATE_GOLDEN=1 cargo test --test dossier_render, then review the diff)",
            want.unwrap_or("<end of file>"),
            got.unwrap_or("<end of file>")
        );
    }
}

#[test]
fn golden_english() {
    golden("shop.en.html", &dossier::html(&shop(), Lang::En));
}

#[test]
fn golden_french() {
    golden("shop.fr.html", &dossier::html(&shop(), Lang::Fr));
}

#[test]
fn the_page_says_what_matters() {
    let d = shop();
    for (lang, code, title, us) in [
        (
            Lang::En,
            "en",
            "Tracking dossier — newsletter@boutique-lumiere.example",
            "<strong class=us>US</strong> yes",
        ),
        (
            Lang::Fr,
            "fr",
            "Dossier de traçage — newsletter@boutique-lumiere.example",
            "<strong class=us>US</strong> oui",
        ),
    ] {
        let page = dossier::html(&d, lang);
        assert!(page.starts_with("<!DOCTYPE html>\n"), "{code}");
        assert!(page.contains(&format!("<html lang=\"{code}\">")), "{code}");
        assert!(page.contains("<meta charset=\"utf-8\">"), "{code}");
        assert!(page.contains(&format!("<title>{title}</title>")), "{code}");
        assert!(page.contains(&format!("<h1>{title}</h1>")), "{code}");
        // Print rules: A4, a page break before each appendix, URLs that wrap.
        for css in [
            "@media print",
            "size: A4",
            ".appendix { break-before: page;",
            "overflow-wrap: anywhere",
        ] {
            assert!(page.contains(css), "{code}: {css}");
        }
        assert_eq!(
            page.matches("<section class=\"appendix\"").count(),
            3,
            "{code}"
        );
        // Both ESPs are marked as US companies or US-owned, and so are the remote operators.
        assert!(page.matches(us).count() >= 2 + 4, "{code}");
        // Tokens highlighted: two SendGrid upn values, two Mailchimp recipient ids.
        assert_eq!(page.matches("<mark>").count(), 5, "{code}");
        assert!(page
            .contains("upn=<mark>u001.aBcD3fGh1jKlMnOpQrStUvWxYz0123456789-2FqRsT</mark></code>"));
        assert!(page.contains("&amp;e=<mark>4a3b2c1d0e</mark></code>"));
        // The footer says "facts, not legal advice" in both languages whatever the page's.
        assert!(
            page.contains("<p lang=\"en\">These are facts recorded by software, not legal advice")
        );
        assert!(page.contains(
            "<p lang=\"fr\">Ce document présente des faits relevés par un logiciel, non un avis"
        ));
        assert!(page.contains("trackless 0.1.0, log /var/lib/trackless/log.db"));
        // Headers as appendix blocks, CRLF shown as line breaks.
        assert!(page.contains("<pre>Return-Path: &lt;bounces+1234567"));
        assert!(!page.contains('\r'));
    }
}

#[test]
fn without_kept_headers_the_dossier_says_so_and_letters_the_appendices_again() {
    let mut d = shop();
    d.keep_headers = false;
    for m in &mut d.messages {
        m.headers = None;
        m.original_file = None;
    }
    let en = dossier::html(&d, Lang::En);
    assert!(en.contains("not kept (the log was written without <code>--keep-headers</code>)"));
    assert!(!en.contains("id=\"headers\""));
    assert!(!en.contains("id=\"originals\""));
    assert!(en.contains("<h2>Appendix A — Texts these facts relate to</h2>"));
    let fr = dossier::html(&d, Lang::Fr);
    assert!(fr.contains("non conservés (le journal a été écrit sans"));
    assert!(fr.contains("<h2>Annexe A — Textes auxquels ces faits se rapportent</h2>"));
}

#[test]
fn data_is_escaped() {
    let mut d = shop();
    d.sender.address = "<b>news</b>@evil.example".into();
    d.sender.organisation = Some("Evil & Sons \"SA\"".into());
    d.generated_from = "trackless </footer><script>x()</script>".into();
    d.esps[0].name = "<i>ESP</i>".into();
    let m = &mut d.messages[0];
    m.subject = Some("<script>alert('subject')</script>".into());
    m.message_id = Some("<id\"onmouseover=\"x()@evil.example>".into());
    m.trackers[0].url = "https://t.evil.example/o?a=\"><img src=x onerror=alert(1)>&b=1".into();
    m.trackers[0].token = Some((m.trackers[0].url.len() - 1, m.trackers[0].url.len()));
    m.trackers[0].rule = Some("<rule>".into());
    m.trackers[0].kind = "<kind>".into();
    m.remote[0].host = "<host>".into();
    m.esp_evidence[0] = "header: X-Evil: </li><style>".into();
    m.headers = Some("Subject: </pre><script>alert(2)</script>\x1b[31m\n".into());
    for lang in [Lang::En, Lang::Fr] {
        let page = dossier::html(&d, lang);
        for raw in [
            "<script",
            "<img",
            "<b>",
            "<i>",
            "<rule>",
            "<kind>",
            "<host>",
            "</li><style>",
            "\"onmouseover",
            "\x1b",
        ] {
            assert!(!page.contains(raw), "{raw} reached the page unescaped");
        }
        assert!(page.contains("&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;"));
        assert!(
            page.contains("a=&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&amp;b=<mark>1</mark>")
        );
        assert!(page.contains("&lt;b&gt;news&lt;/b&gt;@evil.example"));
        assert!(page.contains("Evil &amp; Sons &quot;SA&quot;"));
        assert!(page.contains("&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;\u{241b}[31m"));
        assert!(page.contains("trackless &lt;/footer&gt;&lt;script&gt;x()&lt;/script&gt;"));
        // Exactly one <style>, one </pre> per kept header block, one </footer>.
        assert_eq!(page.matches("<style>").count(), 1);
        assert_eq!(page.matches("</pre>").count(), 2);
        assert_eq!(page.matches("</footer>").count(), 1);
    }
}

#[test]
fn rendering_is_deterministic() {
    let d = shop();
    for lang in [Lang::En, Lang::Fr] {
        let a = dossier::html(&d, lang);
        let b = dossier::html(&d.clone(), lang);
        assert_eq!(a, b);
        assert_eq!(a, dossier::html(&shop(), lang));
    }
    assert_ne!(dossier::html(&d, Lang::En), dossier::html(&d, Lang::Fr));
}

/// Every value of `attr="…"` in the page's tags (text content is escaped, so every `<` that is
/// left opens a tag of ours).
fn attribute_values<'a>(page: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(i) = rest.find(&needle) {
        let after = &rest[i + needle.len()..];
        let end = after.find('"').expect("closing quote");
        out.push(&after[..end]);
        rest = &after[end..];
    }
    out
}

#[test]
fn nothing_remote_is_loaded() {
    let d = shop();
    for lang in [Lang::En, Lang::Fr] {
        let page = dossier::html(&d, lang);
        let lower = page.to_lowercase();
        for bad in [
            "src=",
            "url(",
            "@import",
            "<link",
            "<script",
            "<img",
            "<iframe",
            "<object",
            "<embed",
            "<video",
            "<audio",
            "<svg",
            "<base",
            "srcset=",
            "<meta http-equiv=\"refresh\"",
        ] {
            assert!(!lower.contains(bad), "{bad} in the page");
        }
        // A policy that forbids loading anything, should anything slip through.
        assert!(page.contains("content=\"default-src 'none'; style-src 'unsafe-inline'\""));
        // Every link is http(s) (the legal texts' official sources) or a fragment of the page,
        // and every fragment exists.
        assert_eq!(
            lower.matches("href=").count(),
            lower.matches(" href=\"").count()
        );
        let ids: BTreeSet<&str> = attribute_values(&page, "id").into_iter().collect();
        let hrefs = attribute_values(&page, "href");
        assert!(hrefs.len() > 10, "{hrefs:?}");
        for h in hrefs {
            if let Some(frag) = h.strip_prefix('#') {
                assert!(ids.contains(frag), "#{frag} points nowhere");
            } else {
                assert!(
                    h.starts_with("https://") || h.starts_with("http://"),
                    "href {h}"
                );
            }
        }
        // No tracker URL is a link.
        assert!(!page.contains("href=\"https://u1234567.ct.sendgrid.net"));
        assert!(!page.contains("href=\"https://boutique-lumiere.us21.list-manage.com"));
    }
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if ![0, 1, 2, 3, 5, 6, 8, 9]
        .iter()
        .all(|&i| b[i].is_ascii_digit())
    {
        return false;
    }
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[test]
fn legal_texts_parse_with_both_languages_and_dates() {
    assert!(is_iso_date("2016-04-27"));
    assert!(!is_iso_date("2016-4-27") && !is_iso_date("2016-13-01") && !is_iso_date("27/04/2016"));
    let texts = dossier::legal_texts().unwrap_or_else(|e| panic!("texts.toml: {e}"));
    assert!(texts.len() >= 8, "{}", texts.len());
    let mut ids = BTreeSet::new();
    for t in &texts {
        assert!(ids.insert(t.id.as_str()), "id {} twice", t.id);
        assert!(is_iso_date(&t.date), "{}: date {:?}", t.id, t.date);
        assert!(t.url.starts_with("https://"), "{}: url {}", t.id, t.url);
        for (field, v) in [
            ("title_en", &t.title_en),
            ("title_fr", &t.title_fr),
            ("summary_en", &t.summary_en),
            ("summary_fr", &t.summary_fr),
        ] {
            assert!(!v.trim().is_empty(), "{}: {field} empty", t.id);
        }
        assert_ne!(
            t.summary_en, t.summary_fr,
            "{}: one summary for both languages",
            t.id
        );
        assert!(!t.sources.is_empty(), "{}: no source", t.id);
    }
    // The texts issue 20 names.
    for id in [
        "gdpr-5",
        "gdpr-6",
        "gdpr-44-46",
        "eprivacy-5-3",
        "lil-82",
        "cnil-pixels-2026",
        "cjeu-c-311-18",
        "lg-muenchen-3-o-17493-20",
    ] {
        assert!(ids.contains(id), "{id} missing");
    }
    // Each page carries every text in its own language, escaped like any data.
    let en = dossier::html(&shop(), Lang::En);
    let fr = dossier::html(&shop(), Lang::Fr);
    for t in &texts {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;")
        };
        assert!(
            en.contains(&esc(&t.title_en)) && en.contains(&esc(&t.summary_en)),
            "{}",
            t.id
        );
        assert!(
            fr.contains(&esc(&t.title_fr)) && fr.contains(&esc(&t.summary_fr)),
            "{}",
            t.id
        );
        assert!(!en.contains(&esc(&t.summary_fr)), "{}", t.id);
        assert!(
            en.contains(&format!("<a href=\"{}\">", esc(&t.url))),
            "{}",
            t.id
        );
    }
}

#[test]
fn token_highlight_respects_utf8_boundaries() {
    let url = "https://t.example/é/ça?id=jéton"; // é and ç are two bytes each
    let mut d = shop();
    d.messages.truncate(1);
    let render = |d: &Dossier| dossier::html(d, Lang::En);
    let at = |d: &mut Dossier, token| {
        let t = &mut d.messages[0].trackers[0];
        t.url = url.into();
        t.token = token;
    };
    let e = url.find('é').expect("é");
    // Inside a two-byte character, at either end: no panic, no highlight, the whole URL.
    for token in [(e + 1, e + 4), (e, e + 1), (e + 1, url.len())] {
        at(&mut d, Some(token));
        let page = render(&d);
        assert!(page.contains(&format!("<code>{url}</code>")), "{token:?}");
        assert!(
            !page.contains("<mark>é") && !page.contains("é<mark>"),
            "{token:?}"
        );
        assert_eq!(
            page.matches("<mark>").count(),
            1,
            "{token:?}: only the click's token"
        ); // the second tracker keeps its own
    }
    // Out of bounds, reversed, empty: no highlight either.
    for token in [
        (0, url.len() + 1),
        (10, 5),
        (7, 7),
        (usize::MAX - 1, usize::MAX),
    ] {
        at(&mut d, Some(token));
        assert!(
            render(&d).contains(&format!("<code>{url}</code>")),
            "{token:?}"
        );
    }
    // On boundaries around multi-byte characters: highlighted.
    let start = url.find("jéton").expect("jéton");
    at(&mut d, Some((start, url.len())));
    assert!(render(&d).contains("<code>https://t.example/é/ça?id=<mark>jéton</mark></code>"));
    at(&mut d, Some((e, e + 2)));
    assert!(render(&d).contains("<code>https://t.example/<mark>é</mark>/ça?id=jéton</code>"));
}

#[test]
fn languages_by_name() {
    for (s, lang) in [
        ("en", Lang::En),
        ("EN", Lang::En),
        ("en_GB", Lang::En),
        ("fr", Lang::Fr),
        ("fr-FR", Lang::Fr),
        (" Fr ", Lang::Fr),
    ] {
        assert_eq!(s.parse::<Lang>(), Ok(lang), "{s}");
    }
    for s in ["", "de", "french", "e"] {
        let err = s.parse::<Lang>().expect_err(s);
        assert!(err.to_string().contains("expected en or fr"), "{err}");
    }
}

#[test]
fn an_empty_dossier_renders() {
    let d = Dossier {
        sender: Sender {
            address: "x@y.example".into(),
            domain: "y.example".into(),
            organisation: None,
        },
        period: None,
        messages: Vec::new(),
        esps: Vec::new(),
        generated_from: String::new(),
        keep_headers: false,
    };
    let en = dossier::html(&d, Lang::En);
    assert!(en.contains("No message is recorded for this sender."));
    assert!(en.contains("No provider was named for these messages."));
    assert!(en.contains("<dt>Organisation</dt><dd>not known</dd>"));
    let fr = dossier::html(&d, Lang::Fr);
    assert!(fr.contains("Aucun message n’est enregistré pour cet expéditeur."));
    assert!(fr.ends_with("</html>\n"));
}
