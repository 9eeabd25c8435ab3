//! The harness starts both servers and they answer.

use std::process::Command;

use maildns_testkit::{Bind, PowerDns};

fn dig(addr: std::net::SocketAddr, name: &str, ty: &str) -> String {
    let out = Command::new("dig")
        .args([
            "+norec",
            "+short",
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            name,
            ty,
        ])
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn powerdns_serves_a_created_zone() {
    let pdns = PowerDns::start();
    pdns.create_zone("smoke.test").await;
    let soa = dig(pdns.dns, "smoke.test", "SOA");
    assert!(
        soa.starts_with("ns1.smoke.test. hostmaster.smoke.test."),
        "{soa}"
    );
}

#[test]
fn bind_serves_its_zone() {
    let b = Bind::start("smoke.test");
    let a = dig(b.dns, "ns1.smoke.test", "A");
    assert_eq!(a.trim(), "127.0.0.1");
}
