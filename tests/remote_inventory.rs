//! The inventory of remote hosts a message's HTML would contact on opening (issue 20, part 1):
//! every kind of resource, before the rewrite and after it, with per-recipient tokens.

use trackless::{neutralise, Policy, Remote, Resource};

fn message(html: &str) -> Vec<u8> {
    format!(
        "From: Shop <news@shop.example>\r\nTo: a@example.org\r\nSubject: Winter\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    )
    .into_bytes()
}

fn inventory(html: &str) -> Vec<(String, &'static str, bool, bool, usize)> {
    let raw = message(html);
    let out = neutralise(&raw, &Policy::default());
    out.remote
        .iter()
        .map(|r: &Remote| (r.host.clone(), r.kind.as_str(), r.removed, r.token, r.count))
        .collect()
}

fn entry(
    host: &str,
    kind: Resource,
    removed: bool,
    token: bool,
    count: usize,
) -> (String, &'static str, bool, bool, usize) {
    (host.to_string(), kind.as_str(), removed, token, count)
}

#[test]
fn every_kind_of_remote_resource_is_listed_with_its_fate() {
    let html = r#"<html><head>
<link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=Roboto">
<link rel="stylesheet" href="https://static.shop.example/mail.css">
<style>@import url("https://static.shop.example/more.css");
@font-face { font-family: X; src: url(https://use.typekit.net/af/x.woff2); }
.hero { background-image: url('https://d111111abcdef8.cloudfront.net/hero.jpg'); }</style>
</head><body>
<img src="https://d111111abcdef8.cloudfront.net/logo.png" width="200" height="60" alt="Shop">
<img src="https://d111111abcdef8.cloudfront.net/banner.png" width="600" height="200" alt="">
<img src="https://u123.ct.sendgrid.net/wf/open?upn=aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY" width="1" height="1" alt="">
<img srcset="https://d111111abcdef8.cloudfront.net/p.jpg 1x, https://d111111abcdef8.cloudfront.net/p2.jpg 2x" alt="">
<table background="https://static.shop.example/bg.png"><tr><td style="background:url(https://static.shop.example/cell.png)">x</td></tr></table>
<div style="display:none"><img src="https://static.shop.example/hidden.gif"></div>
<video poster="https://static.shop.example/poster.jpg"></video>
<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">
<img src="/relative.png" alt="relative">
<img src="cid:logo@shop" alt="attached">
</body></html>"#;
    let got = inventory(html);
    let want = vec![
        entry(
            "d111111abcdef8.cloudfront.net",
            Resource::Image,
            false,
            false,
            2,
        ),
        entry(
            "d111111abcdef8.cloudfront.net",
            Resource::Srcset,
            false,
            false,
            2,
        ),
        entry(
            "d111111abcdef8.cloudfront.net",
            Resource::Css,
            false,
            false,
            1,
        ),
        entry("fonts.googleapis.com", Resource::Font, true, false, 1),
        entry("static.shop.example", Resource::Image, true, false, 1),
        entry("static.shop.example", Resource::Background, false, false, 1),
        entry("static.shop.example", Resource::Css, false, false, 1),
        entry("static.shop.example", Resource::Stylesheet, false, false, 2),
        entry("static.shop.example", Resource::Poster, false, false, 1),
        entry("u123.ct.sendgrid.net", Resource::Image, true, true, 1),
        entry("use.typekit.net", Resource::Font, true, false, 1),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_removed_image_takes_its_srcset_and_style_with_it() {
    let html = r#"<p><img src="https://u1.ct.sendgrid.net/wf/open?upn=Zz9Yy8Xx7Ww6Vv5Uu4Tt3" srcset="https://img.shop.example/a.png 2x" style="background:url(https://img.shop.example/b.png)" width="1" height="1"></p>"#;
    assert_eq!(
        inventory(html),
        vec![
            entry("img.shop.example", Resource::Srcset, true, false, 1),
            entry("img.shop.example", Resource::Css, true, false, 1),
            entry("u1.ct.sendgrid.net", Resource::Image, true, true, 1),
        ]
    );
}

#[test]
fn a_message_without_remote_content_lists_nothing_and_a_plain_part_is_not_read() {
    assert!(inventory("<p>Hello <b>there</b> <img src=\"cid:x\"></p>").is_empty());
    let raw = b"From: a@b.example\r\nSubject: t\r\nContent-Type: text/plain\r\n\r\nsee https://img.example/x.png\r\n";
    assert!(neutralise(raw, &Policy::default()).remote.is_empty());
}

#[test]
fn the_inventory_is_bounded() {
    let mut html = String::new();
    for i in 0..3000 {
        html.push_str(&format!(
            "<img src=\"https://h{i}.example/x.png\" width=10 height=10>"
        ));
    }
    let got = inventory(&html);
    assert_eq!(got.len(), trackless::REMOTE_MAX);
}

#[test]
fn a_full_inventory_keeps_the_fate_of_each_element_right() {
    // Many distinct hosts first, then a tracker image with a srcset: the list is merged
    // between elements, never while an element's entries are open.
    let mut html = String::new();
    for i in 0..1990 {
        html.push_str(&format!(
            "<img src=\"https://h{i}.example/x.png\" width=10 height=10>"
        ));
    }
    html.push_str(r#"<img src="https://u1.ct.sendgrid.net/wf/open?upn=Zz9Yy8Xx7Ww6Vv5Uu4Tt3" srcset="https://a.example/1.png 1x, https://b.example/2.png 2x, https://c.example/3.png 3x, https://d.example/4.png 4x, https://e.example/5.png 5x, https://f.example/6.png 6x, https://g.example/7.png 7x, https://i.example/8.png 8x, https://j.example/9.png 9x, https://k.example/10.png 10x, https://l.example/11.png 11x, https://m.example/12.png 12x" width="1" height="1">"#);
    let got = inventory(&html);
    assert!(got.len() <= trackless::REMOTE_MAX);
    let kept_srcset: Vec<_> = got.iter().filter(|e| e.1 == "srcset" && !e.2).collect();
    assert!(kept_srcset.is_empty(), "{kept_srcset:?}");
}
