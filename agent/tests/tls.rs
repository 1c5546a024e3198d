//! TLS to the broker, for real: mosquitto with a TLS listener that requires a client certificate,
//! certificates made by the test (rcgen), the agent and `canh listen` both connecting with a CA
//! file, a certificate and a key. An agent trusting another CA fails with an error that says so.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA, and certificates it signed: the broker's for 127.0.0.1 and a client's.
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn make_ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn write_signed(dir: &Path, name: &str, names: &[&str], issuer: &Issuer<'_, KeyPair>) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn pki(dir: &Path) -> Pki {
    let (params, key, pem) = make_ca("Canh test CA");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let issuer = Issuer::new(params, key);
    Pki { ca, server: write_signed(dir, "broker", &["127.0.0.1", "localhost"], &issuer), client: write_signed(dir, "edge-box", &[], &issuer) }
}

fn site(dir: &Path, port: u16, ca: &Path, client: &(PathBuf, PathBuf)) -> PathBuf {
    let mqtt = format!(
        "url = \"mqtts://127.0.0.1:{port}\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\nkeep_alive_s = 5",
        ca.display(),
        client.0.display(),
        client.1.display()
    );
    counting_site(dir, "tls", &mqtt, &sample("opencv4nodejs_traffic.mp4").display().to_string())
}

#[test]
fn the_agent_publishes_over_mutual_tls_and_a_wrong_ca_is_named() {
    let dir = temp_dir("tls");
    let pki = pki(&dir);
    let broker = Mosquitto::start_with(&format!(
        "persistence false\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        pki.ca.display(),
        pki.server.0.display(),
        pki.server.1.display()
    ));
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let (cert, key) = (pki.client.0.to_str().unwrap(), pki.client.1.to_str().unwrap());
    let listener = Listener::start_with(&url, "canh/v1/tls", &dir, &["--ca-file", pki.ca.to_str().unwrap(), "--cert-file", cert, "--key-file", key]);

    let config = site(&dir, broker.port, &pki.ca, &pki.client);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_canh")).args(["check", "--config", config.to_str().unwrap()]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    listener.wait_until(Duration::from_secs(40), "crossings over TLS", |l| l.events("crossing").len() >= 3);
    assert!(agent.terminate().success(), "{}", agent.log_text());
    assert!(agent.log_text().contains("MQTT connected"), "{}", agent.log_text());

    // An agent that trusts another CA is refused, and says which file to look at.
    let other = temp_dir("tls-other-ca");
    let (_, _, other_pem) = make_ca("Some other CA");
    let other_ca = other.join("other-ca.pem");
    std::fs::write(&other_ca, other_pem).unwrap();
    let config = site(&other, broker.port, &other_ca, &pki.client);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], other.join("canh.log"));
    let expected = format!("not signed by the CA in ca_file {}", other_ca.display());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !agent.log_text().contains(&expected) {
        assert!(std::time::Instant::now() < deadline, "no clear TLS error:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(agent.terminate().success());
    assert!(!agent.log_text().contains("MQTT connected"));

    // A CA file that is not one is refused before anything runs, naming the key and the file.
    std::fs::write(&other_ca, "not a certificate").unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_canh")).args(["check", "--config", config.to_str().unwrap()]).output().unwrap();
    let errors = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{errors}");
    assert!(errors.contains("ca_file") && errors.contains("other-ca.pem"), "{errors}");
    listener.stop();
}
