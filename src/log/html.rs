//! `trackless report --html FILE`: one self-contained static page — no scripts, no remote
//! assets (we of all projects must not load Google Fonts) — with the report tables and two
//! charts drawn as inline SVG: trackers per week and messages per ESP.

use super::report::{By, Row};
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn table(title: &str, by: By, rows: &[Row], out: &mut String) {
    let key = match by {
        By::Domain => "Sender domain",
        By::Sender => "Sender",
        By::Esp => "ESP (platform/carrier)",
    };
    let _ = write!(
        out,
        "<h2>{}</h2>\n<table>\n<thead><tr><th>{key}</th><th>Messages</th><th>Tracked</th><th>Pixels</th>\
         <th>Links unwrapped</th><th>Links opaque</th><th>Fonts</th><th>{}</th><th>Jurisdiction</th>\
         <th>First seen</th><th>Last seen</th></tr></thead>\n<tbody>\n",
        esc(title),
        if by == By::Esp { "Sender domains" } else { "ESPs" }
    );
    for r in rows {
        let esps = if by == By::Esp {
            r.senders.to_string()
        } else {
            r.esps.join(", ")
        };
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td class=n>{}</td><td class=n>{:.0}%</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.us_exposure { " class=us" } else { "" },
            esc(&r.key),
            r.messages,
            r.tracked_share * 100.0,
            r.pixels,
            r.links_unwrapped,
            r.links_opaque,
            r.fonts,
            esc(&esps),
            esc(&r.jurisdictions.join(", ")),
            r.first_seen,
            r.last_seen
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Vertical bars: trackers per week.
fn week_chart(weeks: &[(String, u64)], out: &mut String) {
    let w = 900.0;
    let h = 220.0;
    let max = weeks.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let n = weeks.len().max(1) as f64;
    let bar = (w - 60.0) / n;
    let _ = write!(
        out,
        "<h2>Trackers per week</h2>\n<svg role=img aria-label=\"Trackers per week\" viewBox=\"0 0 {w} {}\" width=\"{w}\" height=\"{}\">\n",
        h + 40.0,
        h + 40.0
    );
    let _ = writeln!(out, "<line x1=50 y1={h} x2={w} y2={h} stroke=\"#444\"/>");
    let _ = writeln!(
        out,
        "<text x=45 y=12 text-anchor=end class=axis>{}</text>",
        max as u64
    );
    for (i, (week, count)) in weeks.iter().enumerate() {
        let bh = (*count as f64 / max) * (h - 20.0);
        let x = 55.0 + i as f64 * bar;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" class=bar><title>{} — {count}</title></rect>",
            h - bh,
            (bar - 2.0).max(1.0),
            esc(week)
        );
        if weeks.len() <= 16 || i % (weeks.len() / 12 + 1) == 0 {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" class=axis>{}</text>",
                x,
                h + 16.0,
                esc(&week[5..])
            );
        }
    }
    out.push_str("</svg>\n");
}

/// Horizontal bars: share of messages per ESP.
fn esp_chart(rows: &[Row], out: &mut String) {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.key != "(none)").take(15).collect();
    let total: u64 = rows.iter().map(|r| r.messages).sum::<u64>().max(1);
    let h = 26.0 * rows.len() as f64 + 10.0;
    let _ = write!(
        out,
        "<h2>Share of messages per ESP</h2>\n<svg role=img aria-label=\"Share per ESP\" viewBox=\"0 0 900 {h}\" width=900 height=\"{h}\">\n"
    );
    for (i, r) in rows.iter().enumerate() {
        let share = r.messages as f64 / total as f64;
        let y = 5.0 + i as f64 * 26.0;
        let _ = writeln!(
            out,
            "<text x=235 y=\"{:.1}\" text-anchor=end>{}</text><rect x=240 y=\"{y:.1}\" width=\"{:.1}\" height=20 class=\"bar{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.0}% ({})</text>",
            y + 15.0,
            esc(&r.key),
            (share * 560.0).max(1.0),
            if r.us_exposure { " us" } else { "" },
            245.0 + share * 560.0,
            y + 15.0,
            share * 100.0,
            r.messages
        );
    }
    out.push_str("</svg>\n");
}

/// The whole page.
pub fn page(
    title: &str,
    period: &str,
    by_domain: &[Row],
    by_esp: &[Row],
    weeks: &[(String, u64)],
) -> String {
    let mut out = String::with_capacity(64 << 10);
    let total: u64 = by_domain.iter().map(|r| r.messages).sum();
    let tracked: u64 = by_domain.iter().map(|r| r.tracked).sum();
    let us: u64 = by_esp
        .iter()
        .filter(|r| r.us_exposure)
        .map(|r| r.messages)
        .sum();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>\n\
         body {{ font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin-bottom: 2em; font-size: 14px; }}\n\
         th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }}\n\
         th {{ background: #f3f3f3; }} td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         tr.us td:first-child::after {{ content: ' (US)'; color: #a33; font-size: 11px; }}\n\
         .bar {{ fill: #4a7bb7; }} .bar.us {{ fill: #b55; }} svg text {{ font-size: 12px; fill: #333; }}\n\
         .axis {{ fill: #666; font-size: 11px; }} .summary {{ font-size: 16px; }}\n\
         </style>\n</head>\n<body>\n<h1>{}</h1>\n<p class=summary>{}: {} message(s), {} tracked ({:.0}%); \
         {} message(s) went through a US provider or a US-owned one.</p>\n",
        esc(title),
        esc(title),
        esc(period),
        total,
        tracked,
        if total > 0 { tracked as f64 * 100.0 / total as f64 } else { 0.0 },
        us
    );
    week_chart(weeks, &mut out);
    esp_chart(by_esp, &mut out);
    table(
        "Who tracks me: sender domains",
        By::Domain,
        by_domain,
        &mut out,
    );
    table("Through which providers", By::Esp, by_esp, &mut out);
    out.push_str("<p>Generated by trackless from its local tracking log. No tracker was contacted.</p>\n</body>\n</html>\n");
    out
}
