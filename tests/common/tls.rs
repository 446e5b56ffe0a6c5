//! A test certificate authority and server certificates it signs, made by
//! the `openssl` command line, as PEM files that nginx, Python and `rivet
//! mkinitramfs --ca-bundle` take. The CA's key is P-384 and the servers'
//! P-256, so a handshake checks both of rivet's ECDSA curves: the chain
//! (ecdsa-with-SHA384) and the server's signature (P-256).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    /// The CA certificate: the bundle a client trusts.
    pub pem: PathBuf,
    key: PathBuf,
}

/// A server's certificate chain and key, as files.
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (tests/setup installs it)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let pem = dir.join(format!("{name}-ca.pem"));
        let key = dir.join(format!("{name}-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-sha384",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            path(&key),
            "-out",
            path(&pem),
            "-subj",
            &format!("/CN=rivet test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        TestCa { pem, key }
    }

    /// A certificate for `names` (IP addresses or DNS names), signed by this CA.
    pub fn server(&self, dir: &Path, file: &str, names: &[&str]) -> ServerCert {
        let cert = dir.join(format!("{file}.crt"));
        let key = dir.join(format!("{file}.key"));
        let csr = dir.join(format!("{file}.csr"));
        let ext = dir.join(format!("{file}.ext"));
        let san: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
                san.join(",")
            ),
        )
        .unwrap();
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path(&key),
            "-out",
            path(&csr),
            "-subj",
            &format!("/CN={}", names[0]),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&self.pem),
            "-CAkey",
            path(&self.key),
            "-set_serial",
            &format!("{}", std::process::id() as u64 * 1000 + names.len() as u64),
            "-days",
            "2",
            "-sha384",
            "-extfile",
            path(&ext),
            "-out",
            path(&cert),
        ]);
        ServerCert { cert, key }
    }
}
