//! TLS from PEM files (issue 7): a client that trusts only a test CA connects; a replaced
//! certificate is picked up without a restart; TLS 1.2 or newer only.

mod common;

use std::sync::Arc;

use melo::tls::ReloadingCert;
use melo::Melo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Melo test CA");
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("ca");
    Ca { cert, key }
}

/// A leaf for `localhost` signed by `ca`: (chain PEM, key PEM, leaf DER).
fn leaf(ca: &Ca, serial: u64) -> (String, String, Vec<u8>) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("leaf");
    let chain = format!("{}{}", cert.pem(), ca.cert.pem());
    (chain, key.serialize_pem(), cert.der().to_vec())
}

/// One HTTPS GET /healthz; returns the leaf certificate the server presented and the body.
async fn get(addr: std::net::SocketAddr, roots: &RootCertStore) -> (Vec<u8>, String) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake with a client that trusts only the test CA");
    let (_, conn) = tls.get_ref();
    let version = conn.protocol_version().expect("version");
    assert!(
        matches!(
            version,
            rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3
        ),
        "{version:?}"
    );
    let presented = conn.peer_certificates().expect("certs")[0].to_vec();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    (presented, String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_and_picks_up_a_replaced_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    let ca = new_ca();
    let (chain1, key1, der1) = leaf(&ca, 1);
    std::fs::write(&cert_path, &chain1).expect("cert");
    std::fs::write(&key_path, &key1).expect("key");
    let reloading = ReloadingCert::load(&cert_path, &key_path).expect("load");

    let melo = Melo::builder(Arc::new(melo::MemoryStore::new()), common::keys())
        .config(common::test_config())
        .build()
        .expect("build");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tls = reloading.server_config().expect("config");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        melo.serve_tls(listener, tls, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
        melo.shutdown().await;
    });

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert.der().to_vec()))
        .expect("root");
    let (presented, body) = get(addr, &roots).await;
    assert_eq!(presented, der1);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");

    // Unchanged files: nothing reloads. A half-written renewal keeps the old pair in service.
    assert!(!reloading.reload_if_changed().expect("no change"));
    std::fs::write(&cert_path, "-----BEGIN CERTIFICATE-----\ntruncated").expect("cert");
    assert!(reloading.reload_if_changed().is_err());
    assert_eq!(
        get(addr, &roots).await.0,
        der1,
        "the previous pair still serves"
    );

    // The renewal lands: the next handshake presents the new certificate, no restart.
    let (chain2, key2, der2) = leaf(&ca, 2);
    std::fs::write(&key_path, &key2).expect("key");
    std::fs::write(&cert_path, &chain2).expect("cert");
    assert!(reloading.reload_if_changed().expect("reload"));
    let (presented, body) = get(addr, &roots).await;
    assert_eq!(presented, der2);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");

    // A client that does not trust the test CA is refused.
    let other = new_ca();
    let mut strangers = RootCertStore::empty();
    strangers
        .add(CertificateDer::from(other.cert.der().to_vec()))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(strangers)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    assert!(TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .is_err());

    let _ = stop.send(());
    server.await.expect("server");
}
