//! The cluster bus over mutual TLS (`--tls-cluster yes`): three nodes replicate through it, the
//! secret's handshake runs inside the TLS session, and a peer without a certificate of the
//! cluster's CA, or without TLS at all, is refused before it sees anything. Every certificate
//! is made here, with rcgen.

mod cluster_support;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{Cluster, IO_TIMEOUT, eventually, query};
use rcgen::ExtendedKeyUsagePurpose;
use tls_support::{Authority, Identity};
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const NET: u8 = 69;
const NODES: u64 = 3;

/// A node certificate, good on both ends of a bus connection, naming every node's address.
fn node_identity(authority: &Authority) -> Identity {
    let names = (1..=NODES).map(|id| format!("127.0.{NET}.{id}")).collect();
    authority.issue(
        names,
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )
}

/// Writes the node's certificate, key and the CA into `dir`; returns the TLS flags naming them.
fn tls_flags(dir: &Path, authority: &Authority, identity: &Identity) -> Vec<String> {
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    };
    vec![
        "--tls-cluster".into(),
        "yes".into(),
        "--tls-cert-file".into(),
        write("node.crt", &identity.cert),
        "--tls-key-file".into(),
        write("node.key", &identity.key),
        "--tls-ca-cert-file".into(),
        write("ca.crt", &authority.pem()),
    ]
}

/// A TLS client of a bus that trusts `authority` and presents `identity`.
fn bus_client(authority: &Authority, identity: &Identity) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(authority.pem().as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_slice_iter(identity.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// Opens a TLS session to node 1's bus and reads the first frame the node sends: the
/// challenge of the secret's handshake, or the error that ended the session.
fn first_bus_frame(cluster: &Cluster, config: Arc<ClientConfig>) -> std::io::Result<Vec<u8>> {
    let ip = format!("127.0.{NET}.1");
    let tcp = TcpStream::connect((ip.as_str(), cluster.bus_port))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from(ip).unwrap();
    let session = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(session, tcp);
    let mut header = [0; 8];
    stream.read_exact(&mut header)?;
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

#[test]
fn a_cluster_replicates_over_a_tls_bus_and_refuses_peers_outside_its_ca() {
    let authority = Authority::new("weir cluster CA");
    let identity = node_identity(&authority);
    let files = tempfile::tempdir().unwrap();
    let flags = tls_flags(files.path(), &authority, &identity);
    let cluster = Cluster::start_with(NET, NODES, "always", flags);

    // Writes are acknowledged once a majority holds them: through the TLS bus.
    let mut writer = cluster.cluster_client().get_connection().unwrap();
    for n in 0..100 {
        let id: String = redis::cmd("XADD")
            .arg("tls-stream")
            .arg("*")
            .arg("n")
            .arg(n)
            .query(&mut writer)
            .unwrap();
        assert!(id.contains('-'), "{id}");
    }
    for node in 1..=NODES {
        eventually(&format!("node {node} holding all 100 entries"), || {
            let mut conn = cluster.replica_conn(node).unwrap();
            query(&mut conn, &["XLEN", "tls-stream"]) == Ok(redis::Value::Int(100))
        });
    }

    // A peer with a certificate of the cluster's CA gets the secret's challenge, inside TLS.
    let challenge = first_bus_frame(&cluster, bus_client(&authority, &identity)).unwrap();
    assert_eq!(&challenge[..8], b"WEIRBUS1");

    // One with a certificate of another CA is refused by the TLS handshake.
    let outsider = Authority::new("another CA");
    let outsider_identity = node_identity(&outsider);
    let refused = first_bus_frame(&cluster, bus_client(&authority, &outsider_identity));
    assert!(refused.is_err(), "{refused:?}");

    // A peer that does not speak TLS sees nothing of the protocol.
    let ip = format!("127.0.{NET}.1");
    let mut plain = TcpStream::connect((ip.as_str(), cluster.bus_port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(b"not a TLS client hello\r\n").unwrap();
    let mut seen = Vec::new();
    let _ = plain.read_to_end(&mut seen);
    assert!(
        !seen.windows(8).any(|bytes| bytes == b"WEIRBUS1"),
        "{seen:?}"
    );
    eventually("node 1 logging the refused handshakes", || {
        cluster.nodes[0]
            .log_text()
            .matches("TLS handshake failed")
            .count()
            >= 2
    });

    // Every node must speak the same on the bus: the setting is fixed while the node runs.
    let mut conn = cluster.conn(1).unwrap();
    let value = query(&mut conn, &["CONFIG", "GET", "tls-cluster"]);
    assert_eq!(
        value,
        Ok(redis::Value::Array(vec![
            redis::Value::BulkString(b"tls-cluster".to_vec()),
            redis::Value::BulkString(b"yes".to_vec()),
        ]))
    );
    let refused = format!(
        "{:?}",
        query(&mut conn, &["CONFIG", "SET", "tls-cluster", "no"])
    );
    assert!(refused.contains("immutable"), "{refused}");
}

#[test]
fn a_node_with_tls_cluster_and_no_ca_does_not_start() {
    let authority = Authority::new("weir cluster CA");
    let identity = node_identity(&authority);
    let files = tempfile::tempdir().unwrap();
    let mut flags = tls_flags(files.path(), &authority, &identity);
    flags.truncate(6);
    let output = Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .args(["--dir", files.path().join("data").to_str().unwrap()])
        .args(["--bind", "127.0.0.1", "--port", "0", "--cluster-port", "0"])
        .args(["--node-id", "1", "--peers", "1=127.0.0.1:16999"])
        .args(["--cluster-secret", "a secret of at least 16 bytes"])
        .args(flags)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tls-cluster needs tls-ca-cert-file"),
        "{stderr}"
    );
}
