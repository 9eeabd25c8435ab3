//! TLS to PostgreSQL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey` in the
//! state-store and `opendkim-sql` URLs, libpq's meaning, and libpq's default
//! files under `~/.postgresql/`): the harness's PostgreSQL is switched to
//! ssl=on with a certificate made here with the `openssl` CLI (a test CA;
//! the server's certificate names 127.0.0.1), and, for client certificates,
//! `ssl_ca_file` plus a `hostssl ... clientcert=verify-full` line in
//! `pg_hba.conf`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use maildns::rotation::{PgOptions, PgStore};
use maildns_providers::Secret;
use maildns_testkit::Postgres;

use crate::cmd;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A root CA `<name>.crt`/`<name>.key` in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=maildns test {name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn connect(pg: &Postgres, url: &str) -> Result<PgStore, String> {
    PgStore::connect(PgOptions {
        url: url.to_string(),
        password: Some(Secret::new(pg.password.clone())),
        replica: "tls".into(),
        lease: Duration::from_secs(30),
        max_connections: 1,
    })
    .map_err(|e| e.to_string())
}

#[test]
fn sslmode_require_and_verify_full_connect_and_a_wrong_root_is_refused_clearly() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca(d, "ca");
    ca(d, "other-ca");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
    let root = d.join("ca.crt").display().to_string();
    let wrong = d.join("other-ca.crt").display().to_string();

    // Without TLS on the server: require is refused, prefer falls back.
    let err = connect(&pg, &format!("{url}?sslmode=require")).unwrap_err();
    assert!(err.contains("state store"), "{err}");
    drop(connect(&pg, &url).unwrap());

    // ssl = on, with the key owned by the server's user (0600).
    let data = pg.socket_dir.join("data");
    let owner = std::fs::metadata(&data).unwrap();
    for f in ["server.crt", "server.key"] {
        let to = data.join(format!("maildns-{f}"));
        std::fs::copy(d.join(f), &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        nix::unistd::chown(
            &to,
            Some(nix::unistd::Uid::from_raw(owner.uid())),
            Some(nix::unistd::Gid::from_raw(owner.gid())),
        )
        .unwrap();
    }
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'maildns-server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'maildns-server.key'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    ] {
        pg.psql("state", sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let tls_sessions = || {
        pg.psql(
            "state",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = 'maildns tls'",
        )
        .unwrap()
        .trim()
        .parse::<usize>()
        .unwrap()
    };

    // require: TLS, the certificate not checked.
    let store = connect(&pg, &format!("{url}?sslmode=require")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tls_sessions(), 1);
    drop(store);
    // verify-full with the right root: the chain and the name check out.
    let store = connect(
        &pg,
        &format!("{url}?sslmode=verify-full&sslrootcert={root}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(tls_sessions() >= 1);
    drop(store);
    // verify-full with another root: refused, naming the store and the
    // certificate problem, never the password.
    let err = connect(
        &pg,
        &format!("{url}?sslmode=verify-full&sslrootcert={wrong}"),
    )
    .expect_err("a certificate from an unknown CA is refused");
    assert!(
        err.contains("state store") && err.contains("/state"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(&pg.password), "{err}");
    // verify-ca without a root: refused before connecting.
    let err = connect(&pg, &format!("{url}?sslmode=verify-ca"))
        .err()
        .unwrap();
    assert!(err.contains("sslrootcert"), "{err}");

    // The opendkim-sql signer's URL takes the same settings.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sql = |q: &str| {
        let s = maildns::signer::OpenDkimSql::new(
            q,
            Some(Secret::new(pg.password.clone())),
            d.join("keys"),
            vec![],
        );
        rt.block_on(s.entry("example.com"))
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        sql(&format!("{url}?sslmode=verify-full&sslrootcert={root}")).unwrap(),
        None
    );
    let err = sql(&format!("{url}?sslmode=verify-full&sslrootcert={wrong}")).unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(&pg.password), "{err}");
}

/// A certificate `<name>.crt`/`<name>.key` for `cn` signed by `ca.crt`, with
/// the extensions `ext` (openssl x509 extfile lines).
fn signed(dir: &Path, name: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.cnf")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.cnf"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// Makes `ca`, `other-ca`, a server certificate for 127.0.0.1 and a client
/// certificate for the harness's user in `d`; switches `pg` to ssl=on, with
/// `ca.crt` as the roots it checks client certificates against and every
/// TLS connection from 127.0.0.1 needing a client certificate of `ca`
/// naming its user (besides the password).
fn tls_server_wanting_client_certificates(pg: &Postgres, d: &Path) {
    ca(d, "ca");
    ca(d, "other-ca");
    signed(
        d,
        "server",
        "127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    );
    signed(
        d,
        "client",
        maildns_testkit::postgres::USER,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    );
    let data = pg.socket_dir.join("data");
    let owner = std::fs::metadata(&data).unwrap();
    for (from, to) in [
        ("server.crt", "maildns-server.crt"),
        ("server.key", "maildns-server.key"),
        ("ca.crt", "maildns-ca.crt"),
    ] {
        let to = data.join(to);
        std::fs::copy(d.join(from), &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        nix::unistd::chown(
            &to,
            Some(nix::unistd::Uid::from_raw(owner.uid())),
            Some(nix::unistd::Gid::from_raw(owner.gid())),
        )
        .unwrap();
    }
    // First match wins: TLS connections from 127.0.0.1 need the certificate.
    let hba = data.join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n{old}"),
    )
    .unwrap();
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'maildns-server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'maildns-server.key'",
        "ALTER SYSTEM SET ssl_ca_file = 'maildns-ca.crt'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    ] {
        pg.psql("postgres", sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// The client certificate subjects of this test's TLS sessions (application
/// `maildns tls`).
fn client_dns(pg: &Postgres) -> String {
    pg.psql(
        "postgres",
        "SELECT coalesce(s.client_dn, '-') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = 'maildns tls'",
    )
    .unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

#[test]
fn sslcert_and_sslkey_send_a_client_certificate_and_a_readable_key_is_refused() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tls_server_wanting_client_certificates(&pg, d);
    let root = d.join("ca.crt").display().to_string();
    let (cert, key) = (d.join("client.crt"), d.join("client.key"));
    let verify = format!("{url}?sslmode=verify-full&sslrootcert={root}");
    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap().to_string();

    // Without a client certificate the server refuses (its pg_hba line).
    let err = connect(&pg, &verify).expect_err("no client certificate");
    assert!(err.contains("state store"), "{err}");
    assert!(err.contains("certificate"), "{err}");

    // The key readable by group or world: refused before connecting, as
    // libpq does, naming the file and never showing what it holds.
    let with_cert = format!(
        "{verify}&sslcert={}&sslkey={}",
        cert.display(),
        key.display()
    );
    for mode in [0o644, 0o604] {
        chmod(&key, mode);
        let err = connect(&pg, &with_cert).expect_err("a key others may read");
        assert!(
            err.contains("group or world access") && err.contains(&key.display().to_string()),
            "{err}"
        );
        assert!(!err.contains(&key_line), "key contents in: {err}");
        assert!(!err.contains(&pg.password), "{err}");
    }

    // 0600: the certificate is sent, and the server sees its subject.
    chmod(&key, 0o600);
    let store = connect(&pg, &with_cert).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        client_dns(&pg).contains(&format!("CN={}", maildns_testkit::postgres::USER)),
        "{}",
        client_dns(&pg)
    );
    drop(store);

    // A named certificate or key that does not exist is an error naming it.
    let missing = d.join("absent.crt");
    let err = connect(
        &pg,
        &format!(
            "{verify}&sslcert={}&sslkey={}",
            missing.display(),
            key.display()
        ),
    )
    .expect_err("missing certificate");
    assert!(
        err.contains(&format!("sslcert {}", missing.display())),
        "{err}"
    );
    let missing = d.join("absent.key");
    let err = connect(
        &pg,
        &format!(
            "{verify}&sslcert={}&sslkey={}",
            cert.display(),
            missing.display()
        ),
    )
    .expect_err("missing key");
    assert!(
        err.contains(&format!("sslkey {}", missing.display())),
        "{err}"
    );

    // The opendkim-sql signer's URL takes the same settings.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sql = |q: &str| {
        let s = maildns::signer::OpenDkimSql::new(
            q,
            Some(Secret::new(pg.password.clone())),
            d.join("keys"),
            vec![],
        );
        rt.block_on(s.entry("example.com"))
            .map_err(|e| e.to_string())
    };
    assert!(sql(&verify).is_err(), "no client certificate");
    assert_eq!(sql(&with_cert).unwrap(), None);
}

#[test]
fn libpq_default_files_under_home_give_the_roots_and_the_client_certificate() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tls_server_wanting_client_certificates(&pg, d);
    let home = d.join("home");
    let dot = home.join(".postgresql");
    std::fs::create_dir_all(&dot).unwrap();
    let cfg = d.join("maildns.toml");
    let status = |query: &str| {
        std::fs::write(
            &cfg,
            format!(
                "state_dir = \"state\"\n[state]\nurl = \"{url}?{query}\"\nreplica_id = \"tls\"\n[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"http://127.0.0.1:9\"\n[domains.\"a.example\"]\naccount = \"dns\"\n"
            ),
        )
        .unwrap();
        cmd()
            .config(&cfg)
            .args(["status"])
            .env("HOME", &home)
            .env("MAILDNS_STATE_PASSWORD", &pg.password)
            .run()
    };

    // verify-full without sslrootcert and without ~/.postgresql/root.crt:
    // refused before connecting, naming the file looked for (libpq's rule).
    let o = status("sslmode=verify-full");
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().contains(&format!(
            "{} does not exist",
            dot.join("root.crt").display()
        )),
        "{}",
        o.text()
    );
    assert!(o.text().contains("sslrootcert"), "{}", o.text());

    // ~/.postgresql/root.crt of another CA: it is the file used (the server's
    // certificate is refused) ...
    std::fs::copy(d.join("other-ca.crt"), dot.join("root.crt")).unwrap();
    let o = status("sslmode=verify-full");
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().to_lowercase().contains("certificate"),
        "{}",
        o.text()
    );
    // ... and so is `require` then (as verify-ca, libpq's rule).
    let o = status("sslmode=require");
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().to_lowercase().contains("certificate"),
        "{}",
        o.text()
    );

    // The right root there, but no client certificate: the server refuses.
    std::fs::copy(d.join("ca.crt"), dot.join("root.crt")).unwrap();
    let o = status("sslmode=verify-full");
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    assert!(o.text().contains("certificate"), "{}", o.text());

    // ~/.postgresql/postgresql.crt and .key, the key private: connected.
    std::fs::copy(d.join("client.crt"), dot.join("postgresql.crt")).unwrap();
    std::fs::copy(d.join("client.key"), dot.join("postgresql.key")).unwrap();
    chmod(&dot.join("postgresql.key"), 0o644);
    let o = status("sslmode=verify-full");
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    assert!(o.text().contains("group or world access"), "{}", o.text());
    chmod(&dot.join("postgresql.key"), 0o600);
    let o = status("sslmode=verify-full");
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains(&pg.password));
}
