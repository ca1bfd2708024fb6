//! What marks a URL value as per-recipient: the predicates the HTML engine judges images by
//! (`html::pixel::per_recipient_token`) and the dossier highlights tokens with.

/// Does a (still percent-encoded) parameter value hold an e-mail address: something, `@` (or
/// `%40`), then a domain with a dot? (`wght@400;700` in a font URL holds none.)
pub fn email_address(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let Some((local, domain)) = lower.split_once('@').or_else(|| lower.split_once("%40")) else {
        return false;
    };
    let dot = domain.find('.');
    !local.is_empty() && dot.is_some_and(|d| d > 0 && d + 1 < domain.len())
}

/// A run of URL-safe characters at least `min` long with both letters and digits.
pub fn opaque(s: &str, min: usize) -> bool {
    s.len() >= min
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~=%+".contains(&b))
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// A file name the same in every copy of a campaign: an image, a font or a stylesheet (fonts
/// and stylesheets are named by their content's hash: the same for everyone).
pub fn static_file(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    [
        ".gif", ".png", ".jpg", ".jpeg", ".webp", ".svg", ".bmp", ".avif", ".woff", ".woff2",
        ".ttf", ".otf", ".eot", ".css",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}
