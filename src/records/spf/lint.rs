//! SPF lints: one record alone (lookup limit, `ptr`, `+all`, `redirect=` beside
//! `all`, terms after `all`, size, a glued `-all`) and all the values at one name
//! (RFC 7208 §4.5: one `v=spf1` record).

use super::*;

impl Spf {
    /// Checks this record alone. Codes: `spf-too-many-lookups`, `spf-glued-all`
    /// (errors), `spf-ptr`,
    /// `spf-pass-all`, `spf-redirect-ignored`, `spf-terms-after-all`, `spf-too-long`
    /// (warnings), `spf-no-all` (info).
    pub fn lint(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let targets = self.lookup_targets();
        if targets.len() > MAX_LOOKUPS {
            out.push(Diagnostic::error(
                "spf-too-many-lookups",
                format!(
                    "the record has {} terms that query DNS (include, a, mx, ptr, exists, redirect) \
                     before counting nested includes; receivers stop at {MAX_LOOKUPS} with a permanent \
                     error (RFC 7208 §4.6.4): replace some with ip4:/ip6: ranges",
                    targets.len()
                ),
            ));
        }
        // `include:_spf.example.net-all`: a missing space glues `-all` to the
        // domain. The grammar allows a top label `net-all` (RFC 7208 §7.1), but no
        // top-level domain ends in `-all`, and receivers then never see the `all`.
        for d in targets.iter().filter_map(|l| l.domain.as_deref()) {
            let top = d.trim_end_matches('.').rsplit('.').next().unwrap_or(d);
            if top.len() > 4 && top.to_ascii_lowercase().ends_with("-all") {
                out.push(Diagnostic::error(
                    "spf-glued-all",
                    format!(
                        "'{d}' ends in '-all': a space is probably missing before '-all' (the top \
                         label would be '{top}', which is no top-level domain, and the record \
                         would have no 'all')"
                    ),
                ));
            }
        }
        if targets.iter().any(|l| l.kind == LookupKind::Ptr) {
            out.push(Diagnostic::warning(
                "spf-ptr",
                "the ptr mechanism is slow, unreliable and must not be used (RFC 7208 §5.5); \
                 list the addresses with ip4:/ip6: or a instead",
            ));
        }
        let all_pos = self
            .terms
            .iter()
            .position(|t| matches!(t, Term::Directive(d) if d.mechanism == Mechanism::All));
        if let Some(all) = self.all()
            && all.effective_qualifier() == Qualifier::Pass
        {
            out.push(Diagnostic::warning(
                "spf-pass-all",
                "'+all' (or 'all' without a qualifier) lets every host on the Internet pass; \
                 use '-all' or '~all'",
            ));
        }
        if all_pos.is_some() && self.redirect().is_some() {
            out.push(Diagnostic::warning(
                "spf-redirect-ignored",
                "the record has both 'all' and 'redirect='; receivers ignore redirect= when all \
                 is present (RFC 7208 §6.1): remove one",
            ));
        }
        if let Some(p) = all_pos
            && self
                .terms
                .iter()
                .skip(p + 1)
                .any(|t| matches!(t, Term::Directive(_)))
        {
            out.push(Diagnostic::warning(
                "spf-terms-after-all",
                "mechanisms after 'all' are never evaluated; move them before it",
            ));
        }
        if all_pos.is_none() && self.redirect().is_none() {
            out.push(Diagnostic::info(
                "spf-no-all",
                "the record ends without 'all' or 'redirect=', so unlisted hosts get 'neutral'; \
                 add '-all' or '~all'",
            ));
        }
        let len = self.to_string().len();
        if len > ADVISED_MAX_LEN {
            out.push(Diagnostic::warning(
                "spf-too-long",
                format!(
                    "the value is {len} bytes; above about {ADVISED_MAX_LEN} the DNS answer may \
                     exceed 512 bytes and need EDNS0 or TCP (RFC 7208 §3.4)"
                ),
            ));
        }
        out
    }
}

/// Checks all TXT values at one name: more than one `v=spf1` value is a permanent
/// error (RFC 7208 §4.5). Code: `spf-multiple-records`.
pub fn lint_name(values: &[TxtRecord]) -> Vec<Diagnostic> {
    let spf: Vec<String> = values
        .iter()
        .filter(|r| is_spf(&r.value()))
        .map(TxtRecord::value_lossy)
        .collect();
    let n = spf.len();
    if n > 1 {
        vec![Diagnostic::error(
            "spf-multiple-records",
            format!(
                "{n} TXT values at this name start with v=spf1 ({}); receivers return a permanent \
                 error (RFC 7208 §4.5): merge them into one record",
                crate::publish::plan::quote_all(&spf)
            ),
        )]
    } else {
        Vec::new()
    }
}
