//! Redirectors that carry the destination in a query parameter: Microsoft Safe Links (`url`),
//! Mailchimp system mail (`mctx/clicks?url=`), google.com/url (`q`/`url`), l.facebook.com (`u`)
//! and the other hosts listed in the rules file with their parameter names.

use url::Url;

pub fn decode(url: &Url, params: &[String]) -> Result<String, &'static str> {
    for name in params {
        if let Some((_, v)) = url.query_pairs().find(|(k, _)| k == name.as_str()) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            return Ok(v.to_string());
        }
    }
    Err("no destination parameter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safelinks_test_vector() {
        let u = Url::parse("https://aus01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.google.com%2Fsearch%3Fq%3Dsafelink%26rlz%3D1&data=05%7C02%7C%7C1ed07253975b46da1d1508dc3443752a%7C84df9e7fe9f640afb435aaaaaaaaaaaa%7C1%7C0%7C638443315629815140&sdata=%2BQY0HBnnxfI7pzZoxzlhZdDvYu80LwQB0zUUjrffVnk%3D&reserved=0").unwrap();
        assert_eq!(
            decode(&u, &["url".into()]).unwrap(),
            "https://www.google.com/search?q=safelink&rlz=1"
        );
    }

    #[test]
    fn first_present_parameter_wins() {
        let u = Url::parse("https://www.google.com/url?sa=t&q=https%3A%2F%2Fexample.org%2F&usg=x")
            .unwrap();
        assert_eq!(
            decode(&u, &["q".into(), "url".into()]).unwrap(),
            "https://example.org/"
        );
        assert!(decode(&u, &["dest".into()]).is_err());
    }
}
