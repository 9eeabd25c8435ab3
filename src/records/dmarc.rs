//! (stub until the records module lands)
#![allow(missing_docs)]

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmarc(String);

impl Dmarc {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(Dmarc(s.to_string()))
    }
    pub fn lint(&self) -> Vec<super::Diagnostic> {
        Vec::new()
    }
    pub fn to_txt(&self) -> maildns_providers::TxtRecord {
        maildns_providers::TxtRecord::from_value(self.0.as_bytes())
    }
}

impl std::fmt::Display for Dmarc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
