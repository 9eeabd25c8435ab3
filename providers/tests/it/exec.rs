//! The exec host: the conformance suite through `contrib/exec/knot-knotc` on a
//! real Knot DNS (served records checked over DNS), a foreign edit refused by
//! the program's compare-and-swap, the re-read a program without one gets, and
//! every way a program can fail (time limit, exit status, bad answers).

use std::path::{Path, PathBuf};
use std::time::Duration;

use maildns_providers::hosts::exec::{Config, Exec};
use maildns_providers::{
    ApplyTraits, ErrorKind, Fqdn, Observed, Provider, TxtChange, TxtRecord, TxtSet, Zone,
};
use maildns_testkit::Knot;
use maildns_testkit::conformance;

use crate::set;

fn fqdn(s: &str) -> Fqdn {
    Fqdn::parse(s).expect("valid name")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/exec/knot-knotc")
}

fn knot_exec(knot: &Knot, traits: ApplyTraits) -> Exec {
    Exec::new(Config {
        command: vec![
            script().display().to_string(),
            "--socket".into(),
            knot.socket().display().to_string(),
        ],
        timeout: Duration::from_secs(30),
        traits,
    })
    .expect("the exec descriptor parses")
}

const CAS: ApplyTraits = ApplyTraits {
    atomic: true,
    compare_and_swap: true,
    deferred: false,
};

fn zone_of(name: &str) -> Zone {
    Zone {
        name: fqdn(name),
        id: name.into(),
    }
}

#[tokio::test]
async fn knot_through_the_example_program_passes_the_conformance_suite() {
    let zone = format!("x{}.test", maildns_testkit::random_label(6));
    let knot = Knot::start(&zone, &[]);
    let exec = knot_exec(&knot, CAS);
    let found = exec
        .find_zone(&fqdn(&format!("_dmarc.{zone}")))
        .await
        .unwrap();
    assert_eq!(found.name, fqdn(&zone));
    let e = exec
        .find_zone(&fqdn("elsewhere.example"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
    conformance::run(&exec, &found, Some(knot.dns)).await;
}

#[tokio::test]
async fn a_change_set_is_one_transaction_and_a_foreign_edit_is_refused() {
    let zone = format!("x{}.test", maildns_testkit::random_label(6));
    let knot = Knot::start(&zone, &["@ TXT \"theirs\""]);
    let exec = knot_exec(&knot, CAS);
    let z = zone_of(&zone);
    let apex = fqdn(&zone);
    let dmarc = fqdn(&format!("_dmarc.{zone}"));
    let read = exec
        .read_sets(&z, &[apex.clone(), dmarc.clone()])
        .await
        .unwrap();
    assert_eq!(read[&apex].set, Some(set(3600, &["theirs"])));
    assert_eq!(read[&dmarc].set, None);

    // Another writer adds a value at the apex after maildns read it.
    let other = knot_exec(&knot, CAS);
    other
        .apply(
            &z,
            &[TxtChange {
                name: apex.clone(),
                old: read[&apex].clone(),
                new: Some(set(3600, &["theirs", "also theirs"])),
            }],
        )
        .await
        .unwrap();

    let changes = [
        TxtChange {
            name: dmarc.clone(),
            old: read[&dmarc].clone(),
            new: Some(set(300, &["v=DMARC1; p=reject"])),
        },
        TxtChange {
            name: apex.clone(),
            old: read[&apex].clone(),
            new: Some(set(3600, &["theirs", "v=spf1 -all"])),
        },
    ];
    let e = exec.apply(&z, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{}", e.error);
    assert!(e.written.is_empty());
    assert!(
        e.error.message.contains("changed since it was read"),
        "{}",
        e.error
    );
    // All or nothing: the DMARC change before the conflict is not there either.
    let dig = conformance::dig_txt(knot.dns, &dmarc).await.unwrap();
    assert!(dig.is_empty(), "{dig:?}");
    let now = exec
        .read_sets(&z, std::slice::from_ref(&apex))
        .await
        .unwrap();
    assert_eq!(
        now[&apex].set.as_ref().map(|s| s.records.len()),
        Some(2),
        "the other writer's value is kept"
    );
}

/// A program that keeps sets in a JSON file, has no compare-and-swap and
/// fails on the name `fail.<zone>` after writing the names before it.
const FILE_STORE: &str = r#"#!/usr/bin/env python3
import json, sys
path = sys.argv[1]
req = json.load(sys.stdin)
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {}
if req["action"] == "read":
    print(json.dumps({"sets": {n: db.get(n) for n in req["names"]}}))
elif req["action"] == "apply":
    done = []
    for c in req["changes"]:
        if c["name"].startswith("fail."):
            json.dump(db, open(path, "w"))
            print(json.dumps({"error": "the host refused " + c["name"], "kind": "invalid", "written": done}))
            sys.exit(1)
        if c["new"] is None:
            db.pop(c["name"], None)
        else:
            db[c["name"]] = {"ttl": c["new"]["ttl"], "records": [{"strings": r["strings"]} for r in c["new"]["records"]]}
        done.append(c["name"])
    json.dump(db, open(path, "w"))
    print(json.dumps({"applied": done}))
"#;

fn program(dir: &Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

fn exec_of(command: Vec<String>, timeout: Duration) -> Exec {
    Exec::new(Config {
        command,
        timeout,
        traits: ApplyTraits::default(),
    })
    .unwrap()
}

#[tokio::test]
async fn without_compare_and_swap_maildns_reads_again_and_reports_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db.json");
    let prog = program(dir.path(), "store", FILE_STORE);
    let exec = exec_of(
        vec![prog, store.display().to_string()],
        Duration::from_secs(30),
    );
    let z = zone_of("example.com");
    let a = fqdn("a.example.com");
    let b = fqdn("b.example.com");
    let read = exec.read_sets(&z, &[a.clone(), b.clone()]).await.unwrap();
    // A foreign value appears at `b` before the apply: refused, nothing written.
    std::fs::write(
        &store,
        r#"{"b.example.com": {"ttl": 60, "records": [{"value": "theirs"}]}}"#,
    )
    .unwrap();
    let changes = vec![
        TxtChange {
            name: a.clone(),
            old: read[&a].clone(),
            new: Some(set(300, &["mine"])),
        },
        TxtChange {
            name: b.clone(),
            old: read[&b].clone(),
            new: Some(set(300, &["mine too"])),
        },
    ];
    let e = exec.apply(&z, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{}", e.error);
    assert_eq!(exec.read_txt(&z, &a).await.unwrap(), None);
    // Read again: applied, and applying the same set again changes nothing.
    let read = exec.read_sets(&z, &[a.clone(), b.clone()]).await.unwrap();
    let again: Vec<TxtChange> = changes
        .into_iter()
        .map(|c| TxtChange {
            old: read[&c.name].clone(),
            ..c
        })
        .collect();
    exec.apply(&z, &again).await.unwrap();
    let now = exec.read_sets(&z, std::slice::from_ref(&a)).await.unwrap();
    let now_changes: Vec<TxtChange> = again
        .iter()
        .map(|c| TxtChange {
            old: Observed::of(c.new.clone()),
            ..c.clone()
        })
        .collect();
    assert_eq!(now[&a].set, Some(set(300, &["mine"])));
    exec.apply(&z, &now_changes).await.unwrap();

    // A program that fails part-way says which names it wrote.
    let f = fqdn("fail.example.com");
    let c = fqdn("c.example.com");
    let read = exec.read_sets(&z, &[c.clone(), f.clone()]).await.unwrap();
    let e = exec
        .apply(
            &z,
            &[
                TxtChange {
                    name: c.clone(),
                    old: read[&c].clone(),
                    new: Some(set(300, &["c"])),
                },
                TxtChange {
                    name: f.clone(),
                    old: read[&f].clone(),
                    new: Some(set(300, &["f"])),
                },
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(e.written, vec![c.clone()]);
    assert_eq!(e.error.kind, ErrorKind::Invalid);
    assert!(
        e.error
            .message
            .contains("the host refused fail.example.com"),
        "{}",
        e.error
    );
    assert_eq!(exec.read_txt(&z, &c).await.unwrap(), Some(set(300, &["c"])));
}

#[tokio::test]
async fn a_program_that_fails_gives_a_clear_error_of_the_right_kind() {
    let dir = tempfile::tempdir().unwrap();
    let z = zone_of("example.com");
    let n = fqdn("_dmarc.example.com");
    let run = |text: &str, timeout: u64| {
        let p = program(dir.path(), &format!("p{}", text.len()), text);
        exec_of(vec![p], Duration::from_secs(timeout))
    };

    let slow = run("#!/bin/sh\nsleep 30 &\nsleep 30\n", 1);
    let started = std::time::Instant::now();
    let e = slow.read_txt(&z, &n).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network);
    assert!(e.message.contains("did not finish within 1 s"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "killed, not waited for"
    );

    let denied = run(
        "#!/bin/sh\necho 'step 1' >&2\necho 'token refused by the host' >&2\nexit 77\n",
        10,
    );
    let e = denied.read_txt(&z, &n).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(
        e.message
            .ends_with("failed (exit status 77): token refused by the host"),
        "{e}"
    );
    assert_eq!(e.provider, "exec");

    let garbled = run("#!/bin/sh\necho '<html>oops</html>'\n", 10);
    let e = garbled.read_txt(&z, &n).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(e.message.contains("not JSON"), "{e}");

    let silent = run("#!/bin/sh\nexit 0\n", 10);
    let e = silent.read_txt(&z, &n).await.unwrap_err();
    assert!(e.message.contains("printed no answer"), "{e}");

    let partial = run("#!/bin/sh\ncat >/dev/null\necho '{\"sets\": {}}'\n", 10);
    let e = partial.read_txt(&z, &n).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(e.message.contains("leaves out _dmarc.example.com"), "{e}");

    let e = Exec::new(Config {
        command: vec!["relative/program".into()],
        timeout: Duration::from_secs(1),
        traits: ApplyTraits::default(),
    })
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("must be an absolute path"), "{e}");

    // Nothing is sent for a value the protocol cannot carry unchanged.
    let never_text = "#!/bin/sh\necho called > \"$0.called\"\nexit 1\n";
    let never = run(never_text, 10);
    let e = never
        .apply(
            &z,
            &[TxtChange {
                name: n.clone(),
                old: Observed::default(),
                new: Some(TxtSet {
                    ttl: 300,
                    records: vec![TxtRecord::from_value(b"caf\xc3\xa9")],
                }),
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(e.error.kind, ErrorKind::Limit(_)), "{}", e.error);
    let called = dir.path().join(format!("p{}.called", never_text.len()));
    assert!(!called.exists(), "the program was run");
}
