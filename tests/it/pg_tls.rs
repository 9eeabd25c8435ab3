//! TLS to PostgreSQL (`sslmode`, `sslrootcert` in the state-store and
//! `opendkim-sql` URLs, libpq's meaning): the harness's PostgreSQL is
//! switched to ssl=on with a certificate made here with the `openssl` CLI
//! (a test CA; the server's certificate names 127.0.0.1).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use maildns::rotation::{PgOptions, PgStore};
use maildns_providers::Secret;
use maildns_testkit::Postgres;

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
