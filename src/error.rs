//! Errors as one line of text, for the places that keep a message rather than
//! an error value: a rotation observation's `reason`, a report's message.

/// `e` and each of its sources, joined by `": "`: the text anyhow's `{:#}`
/// prints, so a typed error stored as text reads as it did through anyhow.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("removing /k")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_reads_like_anyhow_alternate() {
        let e = Outer(std::io::Error::other("denied"));
        assert_eq!(super::chain(&e), "removing /k: denied");
        assert_eq!(super::chain(&e), format!("{:#}", anyhow::Error::new(e)));
    }
}
