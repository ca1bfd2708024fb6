//! Generated newsletters for benchmarks and load tests: the hard case, where every message is
//! a big HTML newsletter that gets rewritten. Deterministic (a seed gives the same bytes).
//!
//! Shaped like an Amazon SES campaign: SES headers, a multipart/alternative with a plain part
//! and an HTML part (quoted-printable or base64), an open pixel on `*.awstrack.me/I0/`, every
//! link wrapped in an `awstrack.me/L0/` redirect whose destination carries `utm_*` parameters,
//! a remote Google Fonts stylesheet, and visible product images that must stay. Text is padded
//! to the asked size with table rows of prose (some of it Latin-1 letters in UTF-8).
//!
//! Used from `tests/` as `common::newsletter` and from `benches/` and `examples/` through
//! `#[path]`.
#![allow(dead_code)]

use base64::Engine;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Same seed, same bytes; the seed also makes the Message-ID and recipient token.
    pub seed: u64,
    /// Approximate size of the whole message in bytes.
    pub size: usize,
    /// Number of wrapped links in the HTML part (the plain part carries a third of them).
    pub links: usize,
    /// The HTML part in base64 rather than quoted-printable.
    pub base64: bool,
}

impl Spec {
    /// A 50 KB quoted-printable newsletter with 40 links.
    pub fn typical(seed: u64) -> Spec {
        Spec {
            seed,
            size: 50 << 10,
            links: 40,
            base64: false,
        }
    }

    /// The spread used for load: 50–150 KB, 20–60 links, one in three in base64.
    pub fn varied(seed: u64) -> Spec {
        let mut r = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        Spec {
            seed,
            size: (50 + r.below(101) as usize) << 10,
            links: 20 + r.below(41) as usize,
            base64: r.below(3) == 0,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn token(&mut self, len: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| char::from(A[self.below(A.len() as u64) as usize]))
            .collect()
    }
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len() as u64) as usize]
    }
}

const WORDS: &str = "offre saison nouveautés collection livraison gratuite découvrez notre \
    sélection pour vous cette semaine remise exclusive membres jardin cuisine été hiver atelier \
    artisan qualité garantie retour facile the new range is here with free delivery and easy returns";

const PATHS: &str = "produits/chaises collections/ete blog/recette-de-saison \
    compte/preferences magasins aide/livraison offres/membres p/table-chene-massif nouveautes";

/// One generated newsletter, CRLF line ends.
pub fn newsletter(spec: Spec) -> Vec<u8> {
    let mut r = Rng(spec.seed.wrapping_add(1));
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let paths: Vec<&str> = PATHS.split_whitespace().collect();
    let ses = format!(
        "010{}-{}-{}-{}-{}-{}-000000",
        r.hex(13),
        r.hex(8),
        r.hex(4),
        r.hex(4),
        r.hex(4),
        r.hex(12)
    );
    let region = "eu-west-1";
    let sub = r.token(8).to_lowercase();
    let recipient = r.token(22);
    let wrap = |r: &mut Rng, dest: &str| {
        // As SES writes it: the URL's delimiters escaped, `:` and `=` left.
        const SES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
            .add(b' ')
            .add(b'/')
            .add(b'?')
            .add(b'&')
            .add(b'#')
            .add(b'%');
        let enc = percent_encoding::utf8_percent_encode(dest, SES);
        format!(
            "https://{sub}.r.{region}.awstrack.me/L0/{enc}/1/{ses}/{}={}",
            r.token(27),
            100 + r.below(900)
        )
    };
    let dest = |r: &mut Rng, i: usize| {
        format!(
            "https://www.maison-exemple.fr/{}?utm_source=newsletter&utm_medium=email&utm_campaign=hiver{}&utm_content=lien{i}&rid={recipient}",
            r.pick(&paths),
            spec.seed % 97
        )
    };
    let links: Vec<String> = (0..spec.links.max(1))
        .map(|i| {
            let d = dest(&mut r, i);
            wrap(&mut r, &d)
        })
        .collect();

    // HTML: head with a remote font, a pixel, then rows until the size is reached.
    let mut html = String::with_capacity(spec.size + 4096);
    html.push_str("<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\">\n");
    html.push_str("<link href=\"https://fonts.googleapis.com/css2?family=Lato:wght@400;700&display=swap\" rel=\"stylesheet\">\n");
    html.push_str("<style>body{margin:0;font-family:Lato,Arial,sans-serif}td{padding:8px}.btn{background:#224;color:#fff}</style>\n");
    html.push_str("<title>Les nouveautés de la semaine</title></head><body>\n");
    html.push_str(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">\n",
    );
    // The body size is the target minus the headers and the plain part, roughly; encoding
    // adds ~3 % (QP) or ~35 % (base64), so aim for the encoded size.
    let overhead = if spec.base64 { 1.36 } else { 1.04 };
    let html_target = ((spec.size.saturating_sub(3000)) as f64 / (overhead + 0.12)) as usize;
    let mut row = 0usize;
    while html.len() < html_target || row < links.len() {
        // The first rows each carry one link (on the button, and on the picture every fourth
        // row); the rows after them are prose and pictures only.
        let link = links.get(row);
        html.push_str("<tr><td class=\"produit\">");
        if row.is_multiple_of(4) {
            let img = format!(
                "<img src=\"https://cdn.maison-exemple.fr/img/produit-{row}.jpg\" width=\"560\" height=\"320\" alt=\"Produit {row}\" style=\"display:block;border:0\">"
            );
            match link {
                Some(l) => html.push_str(&format!("<a href=\"{l}\">{img}</a>")),
                None => html.push_str(&img),
            }
        }
        html.push_str("<p>");
        let n = if link.is_some() {
            10 + r.below(20)
        } else {
            30 + r.below(50)
        };
        for w in 0..n {
            if w > 0 {
                html.push(' ');
            }
            html.push_str(r.pick(&words));
        }
        html.push_str(".</p>");
        if let Some(l) = link {
            html.push_str(&format!(
                "<p><a class=\"btn\" href=\"{l}\" target=\"_blank\">Je découvre</a></p>"
            ));
        }
        html.push_str("</td></tr>\n");
        row += 1;
    }
    html.push_str(&format!(
        "<tr><td><a href=\"{}\">Se désinscrire</a></td></tr></table>\n",
        wrap(
            &mut r,
            &format!("https://www.maison-exemple.fr/desinscription?rid={recipient}")
        )
    ));
    html.push_str(&format!(
        "<img src=\"https://{sub}.r.{region}.awstrack.me/I0/{ses}/{}={}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">\n</body></html>\n",
        r.token(27),
        100 + r.below(900)
    ));

    let mut text = String::from("Les nouveautés de la semaine\r\n\r\n");
    for (i, l) in links.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        text.push_str(&format!("Article {i} : {l}\r\n"));
    }
    text.push_str("\r\nPour vous désinscrire, répondez STOP.\r\n");

    let boundary = format!("----=_Part_{}_{}", spec.seed, r.hex(10));
    let mut m = String::with_capacity(spec.size + 8192);
    m.push_str(&format!(
        "Return-Path: <{ses}@{region}.amazonses.com>\r\n\
         Received: from a2-{n}.smtp-out.{region}.amazonses.com (a2-{n}.smtp-out.{region}.amazonses.com [54.240.4.{n}])\r\n\
         \tby mx.example.net (Postfix) with ESMTPS id 4Q{id}\r\n\
         \tfor <lecteur@example.net>; Mon, 30 Nov 2026 08:{mm:02}:00 +0000 (UTC)\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; q=dns/txt; c=relaxed/simple;\r\n\
         \ts=ug7nbtf4gccmlpwj322ax3p6ow6yfsug; d=amazonses.com; t=1796025600;\r\n\
         \th=From:To:Subject:MIME-Version:Content-Type:Message-ID:Date:Feedback-ID;\r\n\
         \tbh={bh}=;\r\n\
         \tb={b}\r\n\
         From: Maison Exemple <news@maison-exemple.fr>\r\n\
         To: lecteur@example.net\r\n\
         Subject: =?UTF-8?Q?Les_nouveaut=C3=A9s_de_la_semaine_n=C2=B0{seed}?=\r\n\
         Date: Mon, 30 Nov 2026 08:{mm:02}:00 +0000\r\n\
         Message-ID: <{ses}@email.amazonses.com>\r\n\
         MIME-Version: 1.0\r\n\
         List-Unsubscribe: <https://www.maison-exemple.fr/desinscription?rid={recipient}>\r\n\
         List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
         Feedback-ID: 1.{region}.{fb}=:AmazonSES\r\n\
         X-SES-Outgoing: 2026.11.30-54.240.4.{n}\r\n\
         Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n",
        n = 10 + r.below(240),
        id = r.token(10),
        mm = spec.seed % 60,
        bh = r.token(43),
        b = r.token(120),
        seed = spec.seed,
        fb = r.token(44),
    ));
    m.push_str(&text);
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/html; charset=UTF-8\r\n"
    ));
    if spec.base64 {
        m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        let b = base64::engine::general_purpose::STANDARD.encode(html.as_bytes());
        for chunk in b.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(chunk).expect("ascii"));
            m.push_str("\r\n");
        }
    } else {
        m.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        m.push_str(&quoted_printable(&html));
    }
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

/// `n` varied newsletters with seeds `first..first + n`.
pub fn varied(first: u64, n: usize) -> Vec<Vec<u8>> {
    (first..first + n as u64)
        .map(|s| newsletter(Spec::varied(s)))
        .collect()
}

/// Quoted-printable as mailers write it: lines of at most 76 characters with soft breaks,
/// `=` and non-ASCII escaped, CRLF line ends.
fn quoted_printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 106 / 100);
    for line in s.split('\n') {
        let mut col = 0;
        for &b in line.as_bytes() {
            let lit = (b' '..=b'~').contains(&b) && b != b'=';
            let w = if lit { 1 } else { 3 };
            if col + w > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            if lit {
                out.push(b as char);
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            col += w;
        }
        out.push_str("\r\n");
    }
    out
}
