//! The zone files of one account: `path` may contain `{zone}` to get one file per
//! zone, and each name goes to the file of the longest zone that holds it.

use std::path::Path;

use super::{Config, KIND, ZoneFile};
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Operation, Profile, Provider, TxtChange,
    TxtSet, Zone, ZoneSets,
};

/// Zone files of one account, as one [`Provider`].
#[derive(Debug)]
pub struct ZoneFiles {
    files: Vec<ZoneFile>,
    profile: Profile,
}

impl ZoneFiles {
    /// One [`ZoneFile`] per zone, at `path` with `{zone}` replaced by the zone's name.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when several zones would share one file (no `{zone}`
    /// in `path`).
    pub fn new(path: &Path, zones: &[Fqdn], bump_serial: bool) -> Result<Self, Error> {
        let template = path.to_string_lossy();
        let mut uniq: Vec<Fqdn> = zones.to_vec();
        uniq.sort();
        uniq.dedup();
        if uniq.len() > 1 && !template.contains("{zone}") {
            return Err(Error::new(
                KIND,
                Operation::FindZone,
                None,
                ErrorKind::Config,
                format!(
                    "zone file {} would hold several zones ({}): put {{zone}} in its path to get one file per zone",
                    path.display(),
                    uniq.iter().map(Fqdn::as_str).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let files = uniq
            .into_iter()
            .map(|zone| {
                ZoneFile::new(Config {
                    path: template.replace("{zone}", zone.as_str()).into(),
                    zone,
                    default_ttl: 3600,
                    bump_serial,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ZoneFiles {
            files,
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn file_for(&self, name: &Fqdn) -> Result<&ZoneFile, Error> {
        self.files
            .iter()
            .filter(|f| name.is_within(f.zone()))
            .max_by_key(|f| f.zone().as_str().len())
            .ok_or_else(|| {
                Error::new(
                    KIND,
                    Operation::FindZone,
                    Some(name),
                    ErrorKind::ZoneNotFound,
                    "no configured zone file holds this name",
                )
            })
    }
}

#[async_trait::async_trait]
impl Provider for ZoneFiles {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn profile(&self) -> &Profile {
        &self.profile
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        self.file_for(name)?.find_zone(name).await
    }
    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.file_for(name)?.read_txt(zone, name).await
    }
    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.file_for(name)?.replace_txt(zone, name, set).await
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.file_for(name)?.delete_txt(zone, name).await
    }
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        self.files.iter().find_map(|f| f.zone_for(apex))
    }
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: true,
            deferred: false,
        }
    }
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let file = self.file_for(&zone.name)?;
        for name in names {
            self.same_file(file, name, Operation::Read)?;
        }
        file.read_sets(zone, names).await
    }
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let file = self
            .file_for(&zone.name)
            .map_err(ApplyError::nothing_written)?;
        for c in changes {
            self.same_file(file, &c.name, c.operation())
                .map_err(ApplyError::nothing_written)?;
        }
        file.apply(zone, changes).await
    }
}

impl ZoneFiles {
    /// Refuses a name that belongs to another file than the zone's (a deeper
    /// zone with its own file): one change set is one file.
    fn same_file(&self, file: &ZoneFile, name: &Fqdn, op: Operation) -> Result<(), Error> {
        let other = self.file_for(name)?;
        if std::ptr::eq(other, file) {
            Ok(())
        } else {
            Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Invalid,
                format!(
                    "this name is in zone {} ({}), not in the change set's zone {}",
                    other.zone(),
                    other.path().display(),
                    file.zone()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Fqdn {
        Fqdn::parse(s).unwrap()
    }

    #[test]
    fn several_zones_need_a_zone_placeholder() {
        let zones = [n("example.com"), n("example.org")];
        let e = ZoneFiles::new(Path::new("/tmp/all.zone"), &zones, true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("put {zone} in its path"), "{e}");
        let ok = ZoneFiles::new(Path::new("/tmp/{zone}.zone"), &zones, true).unwrap();
        let f = ok.file_for(&n("a._domainkey.example.org")).unwrap();
        assert_eq!(f.path(), Path::new("/tmp/example.org.zone"));
        assert_eq!(
            ok.file_for(&n("example.net")).unwrap_err().kind,
            ErrorKind::ZoneNotFound
        );
    }

    #[test]
    fn one_change_set_is_one_file() {
        let zones = [n("example.com"), n("sub.example.com")];
        let files = ZoneFiles::new(Path::new("/tmp/{zone}.zone"), &zones, true).unwrap();
        let apex = files.file_for(&n("example.com")).unwrap();
        assert!(
            files
                .same_file(apex, &n("_dmarc.example.com"), Operation::Replace)
                .is_ok()
        );
        let e = files
            .same_file(apex, &n("_dmarc.sub.example.com"), Operation::Replace)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            e.message
                .contains("in zone sub.example.com (/tmp/sub.example.com.zone)"),
            "{e}"
        );
        assert_eq!(
            files.zone_for(&n("sub.example.com")).map(|z| z.id),
            Some("/tmp/sub.example.com.zone".to_string())
        );
        assert_eq!(files.zone_for(&n("other.example.com")), None);
        assert!(files.apply_traits().atomic && files.apply_traits().compare_and_swap);
    }
}
