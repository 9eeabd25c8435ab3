//! The Unix side of OpenDKIM's files: who may read them (OpenDKIM reads its
//! tables and keys as its own user when it reloads), the `RequireSafeKeys`
//! check on key files, the signer user looked up in the system databases, and
//! atomic replacement of a table. The tables themselves are parsed in
//! [`super::opendkim`], which does no I/O.

use std::collections::HashSet;
use std::fs::{OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a table could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {op}: {source}", path.display())]
pub struct WriteError {
    /// The file.
    pub path: PathBuf,
    /// What was being done.
    pub op: &'static str,
    /// The OS error.
    pub source: std::io::Error,
}

/// Replaces the table at `path` with `content` atomically: temp file in the same
/// directory, fsync, rename over, fsync the directory. A symlink is followed (its
/// target is replaced). The mode and owner are those of the existing file unless
/// given (`mode` for a new file defaults to 0644; a table holds no secret but must be
/// readable by the opendkim user).
pub fn write_table_atomic(
    path: &Path,
    content: &str,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
) -> Result<(), WriteError> {
    let werr = |p: &Path, op: &'static str| {
        let p = p.to_path_buf();
        move |source| WriteError {
            path: p,
            op,
            source,
        }
    };
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => path.to_path_buf(),
    };
    let existing = std::fs::metadata(&real).ok();
    let mode = mode
        .or(existing.as_ref().map(|m| m.mode() & 0o7777))
        .unwrap_or(0o644);
    let owner = owner.or(existing.as_ref().map(|m| (m.uid(), m.gid())));
    let dir = match real.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "table".into());
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(werr(&tmp, "create"))?;
        f.write_all(content.as_bytes())
            .map_err(werr(&tmp, "write"))?;
        if let Some((uid, gid)) = owner {
            let me = nix::unistd::geteuid().as_raw();
            let current = f.metadata().map_err(werr(&tmp, "stat"))?;
            if (current.uid(), current.gid()) != (uid, gid) || me == 0 {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                    .map_err(werr(&tmp, "chown (keeping the table's owner needs root)"))?;
            }
        }
        f.set_permissions(Permissions::from_mode(mode))
            .map_err(werr(&tmp, "chmod"))?;
        f.sync_all().map_err(werr(&tmp, "fsync"))?;
        std::fs::rename(&tmp, &real).map_err(werr(&real, "rename into place"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(werr(&dir, "fsync directory"))
}

/// The user OpenDKIM runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerUser {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

impl SignerUser {
    /// Looks a user up in the password database.
    pub fn lookup(name: &str) -> Option<SignerUser> {
        let u = nix::unistd::User::from_name(name).ok()??;
        Some(SignerUser {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })
    }

    /// The user this process runs as (what an OpenDKIM without `UserID` started by
    /// this user would be).
    pub fn current() -> Option<SignerUser> {
        let u = nix::unistd::User::from_uid(nix::unistd::geteuid()).ok()??;
        Some(SignerUser {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })
    }
}

/// Whether a user (uid, primary gid, supplementary groups looked up by name) can
/// read `path`: every directory on the way searchable and the file readable, by the
/// permission bits (root reads everything).
pub fn readable_by(path: &Path, uid: u32, gid: u32) -> bool {
    if uid == 0 {
        return std::fs::metadata(path).is_ok();
    }
    let groups = groups_of(uid, gid);
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    let allowed = |m: &std::fs::Metadata, bits: u32| {
        let mode = m.mode();
        if m.uid() == uid {
            mode & (bits << 6) == bits << 6
        } else if groups.contains(&m.gid()) {
            mode & (bits << 3) == bits << 3
        } else {
            mode & bits == bits
        }
    };
    for anc in real.ancestors().skip(1) {
        match std::fs::metadata(anc) {
            Ok(m) if allowed(&m, 0o1) => {}
            _ => return false,
        }
    }
    match std::fs::metadata(&real) {
        Ok(m) => allowed(&m, 0o4),
        Err(_) => false,
    }
}

fn groups_of(uid: u32, gid: u32) -> HashSet<u32> {
    let mut set = HashSet::from([gid]);
    if let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        && let Ok(name) = std::ffi::CString::new(u.name)
        && let Ok(gs) = nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid))
    {
        set.extend(gs.into_iter().map(|g| g.as_raw()));
    }
    set
}

/// Users (other than `me` and root) whose primary group is `gid` or who are listed
/// members of it: OpenDKIM's "group has multiple users" test. Primary groups are
/// read from /etc/passwd (users only known to NSS services such as LDAP are missed).
fn other_group_members(gid: u32, me: &SignerUser) -> Option<String> {
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(name), Some(uid), Some(g)) = (f.first(), f.get(2), f.get(3))
                && let (Ok(uid), Ok(g)) = (uid.parse::<u32>(), g.parse::<u32>())
                && g == gid
                && uid != me.uid
                && uid != 0
            {
                return Some((*name).to_string());
            }
        }
    }
    if let Ok(Some(g)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        return g.mem.into_iter().find(|m| m != &me.name && m != "root");
    }
    None
}

/// Checks `path` the way OpenDKIM's `RequireSafeKeys` does, for a filter running as
/// `user`: every node of the real path from `/` down must pass. The key file: owned
/// by `user` or root, no other-read/write bits, group bits only if no one else is
/// in its group. Each directory: not world-writable, not group-writable by a shared
/// group, not writable and owned by another uid. Returns every problem found
/// (OpenDKIM logs the first).
pub fn check_safe_key(path: &Path, user: &SignerUser) -> Result<(), Vec<String>> {
    let real = std::fs::canonicalize(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let mut problems = Vec::new();
    let mut nodes: Vec<&Path> = real.ancestors().collect();
    nodes.reverse();
    for node in nodes {
        let m = match std::fs::metadata(node) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{}: {e}", node.display()));
                continue;
            }
        };
        let mode = m.mode();
        let shown = node.display();
        if m.is_file() {
            if m.uid() != 0 && m.uid() != user.uid {
                problems.push(format!(
                    "{shown} is not owned by {} (uid {}) or root",
                    user.name, user.uid
                ));
            }
            if mode & 0o060 != 0
                && let Some(other) = other_group_members(m.gid(), user)
            {
                problems.push(format!(
                    "{shown} is in group {} which has multiple users (e.g. {other:?})",
                    m.gid()
                ));
            }
            if mode & 0o006 != 0 {
                problems.push(format!("{shown} can be read or written by other users"));
            }
        } else if m.is_dir() {
            if mode & 0o002 != 0 {
                problems.push(format!("{shown} can be read or written by other users"));
            }
            if mode & 0o020 != 0
                && let Some(other) = other_group_members(m.gid(), user)
            {
                problems.push(format!(
                    "{shown} is group-writable by group {} which has multiple users (e.g. {other:?})",
                    m.gid()
                ));
            }
            if mode & 0o200 != 0 && m.uid() != 0 && m.uid() != user.uid {
                problems.push(format!(
                    "{shown} is writable and owned by uid {}, not {} or root",
                    m.uid(),
                    user.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Whether `a` and `b` name the same file (compared canonicalised when both
/// exist, else as written).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_table_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.table");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
        write_table_atomic(&p, "new\n", None, None).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        let fresh = dir.path().join("signing.table");
        write_table_atomic(&fresh, "x\n", None, None).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn safe_key_rules() {
        // Under a 0700 directory in the crate (not /tmp, which is world-writable).
        let base = tempfile::Builder::new()
            .prefix("safekey-")
            .tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target")
            .unwrap();
        std::fs::set_permissions(base.path(), Permissions::from_mode(0o700)).unwrap();
        let me = SignerUser::current().unwrap();
        let key = base.path().join("k.private");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, Permissions::from_mode(0o600)).unwrap();
        // Parent dirs of the checkout may be fine or not; only assert on our nodes.
        let ours = |r: Result<(), Vec<String>>| -> Vec<String> {
            r.err()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.contains("safekey-"))
                .collect()
        };
        assert!(ours(check_safe_key(&key, &me)).is_empty());
        std::fs::set_permissions(&key, Permissions::from_mode(0o604)).unwrap();
        let p = ours(check_safe_key(&key, &me));
        assert!(p.iter().any(|p| p.contains("other users")), "{p:?}");
        std::fs::set_permissions(&key, Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(base.path(), Permissions::from_mode(0o777)).unwrap();
        let p = ours(check_safe_key(&key, &me));
        assert!(p.iter().any(|p| p.contains("other users")), "{p:?}");
        // Keys under /tmp never pass.
        let tmp = tempfile::tempdir_in("/tmp").unwrap();
        let k2 = tmp.path().join("k");
        std::fs::write(&k2, "x").unwrap();
        std::fs::set_permissions(&k2, Permissions::from_mode(0o600)).unwrap();
        let all = check_safe_key(&k2, &me).unwrap_err();
        assert!(all.iter().any(|p| p.starts_with("/tmp ")), "{all:?}");
        // A file owned by someone else.
        let nobody = SignerUser::lookup("nobody").unwrap();
        if me.uid == 0 {
            std::fs::set_permissions(base.path(), Permissions::from_mode(0o700)).unwrap();
            let p = ours(check_safe_key(&key, &nobody));
            assert!(p.is_empty(), "root-owned files are accepted: {p:?}");
            std::os::unix::fs::chown(&key, Some(nobody.uid), None).unwrap();
            let p = ours(check_safe_key(&key, &me));
            assert!(p.iter().any(|p| p.contains("not owned")), "{p:?}");
        }
        assert!(check_safe_key(&base.path().join("missing"), &me).is_err());
    }

    #[test]
    fn readable_by_rules() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "x").unwrap();
        let nobody = SignerUser::lookup("nobody").unwrap();
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by(&f, nobody.uid, nobody.gid));
        std::fs::set_permissions(&f, Permissions::from_mode(0o600)).unwrap();
        assert!(!readable_by(&f, nobody.uid, nobody.gid));
        assert!(readable_by(&f, 0, 0));
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
        assert!(!readable_by(&f, nobody.uid, nobody.gid));
        assert!(!readable_by(&dir.path().join("missing"), 0, 0));
    }
}
