//! Text made safe to place in HTML.

/// `s` with `& < > " '` escaped, for an element's text or an attribute's value.
pub fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
