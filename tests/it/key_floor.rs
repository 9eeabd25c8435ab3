//! The RSA key floor at `keygen` (RFC 8301 §3.2): under 1024 bits is refused,
//! 1024 warns, 2048 is quiet. (Import and load: the `import_opendkim` module.)

use maildns_testkit::cmd::Output;

use crate::cmd;

fn keygen(bits: &str, dir: &std::path::Path) -> Output {
    cmd()
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
        .run()
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

#[test]
fn keygen_refuses_a_size_for_ed25519_and_defaults_rsa_to_2048() {
    let dir = tempfile::tempdir().unwrap();
    let o = cmd()
        .args([
            "keygen",
            "-d",
            "example.com",
            "-s",
            "e1",
            "-a",
            "ed25519",
            "-b",
            "2048",
            "-D",
        ])
        .arg(dir.path())
        .run();
    assert_eq!(o.code(), Some(64), "{}", o.text());
    assert!(
        o.stderr_text().contains("--bits is for RSA keys"),
        "{}",
        o.text()
    );
    assert!(!dir.path().join("e1.private").exists());

    let o = cmd()
        .args(["--json", "keygen", "-d", "example.com", "-s", "r1", "-D"])
        .arg(dir.path())
        .run();
    assert_eq!(o.code(), Some(0), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["bits"], 2048, "{v}");
}
