//! The RSA key floor at `keygen` (RFC 8301 §3.2): under 1024 bits is refused,
//! 1024 warns, 2048 is quiet. (Import and load: tests/import_opendkim.rs.)

use std::process::Command;

fn keygen(bits: &str, dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_maildns"))
        .args([
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "s1",
            "--bits",
            bits,
            "-D",
        ])
        .arg(dir)
        .env_remove("MAILDNS_CONFIG")
        .output()
        .expect("maildns runs")
}

#[test]
fn keygen_refuses_under_1024_and_warns_at_1024() {
    let dir = tempfile::tempdir().unwrap();
    let o = keygen("512", dir.path());
    assert_eq!(o.status.code(), Some(64), "{o:?}");
    assert!(!dir.path().join("s1.private").exists());

    let o = keygen("1024", dir.path());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: a 1024-bit RSA key: RFC 8301 (section 3.2) says signers SHOULD use at least 2048 bits"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let o = keygen("2048", dir.path());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("warning"),
        "{o:?}"
    );
}
