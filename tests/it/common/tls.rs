//! TLS material made by the test with the `openssl` command: a CA, a server certificate for
//! 127.0.0.1 signed by it, a client certificate signed by it, and a second CA that signed
//! nothing (the wrong CA); and the `redis-server` arguments that serve TLS with them.

use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// Certificates and keys in a temp dir, as PEM files.
pub struct Certificates {
    dir: TempDir,
}

/// Run `openssl` with `args` in `dir`; panics with its output unless it succeeds.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `openssl` ({e}); `make test-deps` installs it"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A new P-256 key in `name`.key.
fn key(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ],
    );
}

/// A self-signed CA certificate `name`.crt with the key `name`.key.
fn ca(dir: &Path, name: &str, subject: &str) {
    key(dir, name);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A certificate `name`.crt (key `name`.key) signed by the CA `ca`, with `extensions`.
fn signed(dir: &Path, name: &str, ca: &str, subject: &str, extensions: &str) {
    key(dir, name);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), extensions).expect("write the extensions file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

impl Certificates {
    /// Make the CA, the server and client certificates it signs, and an unrelated CA.
    pub fn make() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let path = dir.path();
        ca(path, "ca", "/CN=evm-executor test CA");
        ca(path, "other-ca", "/CN=some other CA");
        signed(
            path,
            "server",
            "ca",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        );
        signed(
            path,
            "client",
            "ca",
            "/CN=evm-executor",
            "extendedKeyUsage=clientAuth\n",
        );
        Self { dir }
    }

    /// The file `name` (`ca.crt`, `client.key`, …).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The arguments that make `redis-server` serve TLS with the server certificate, trust the
    /// CA, and require clients to present a certificate it signed.
    pub fn server_args(&self) -> Vec<String> {
        let arg = |name: &str| self.path(name).display().to_string();
        vec![
            "--tls-cert-file".into(),
            arg("server.crt"),
            "--tls-key-file".into(),
            arg("server.key"),
            "--tls-ca-cert-file".into(),
            arg("ca.crt"),
            "--tls-auth-clients".into(),
            "yes".into(),
        ]
    }

    /// The arguments that make `redis-cli` connect over TLS with the client certificate.
    pub fn cli_args(&self) -> Vec<String> {
        let arg = |name: &str| self.path(name).display().to_string();
        vec![
            "--tls".into(),
            "--cacert".into(),
            arg("ca.crt"),
            "--cert".into(),
            arg("client.crt"),
            "--key".into(),
            arg("client.key"),
        ]
    }

    /// The `EVM_EXECUTOR_*` overrides for TLS with the client certificate and `ca` as the CA
    /// file (`ca.crt`, or `other-ca.crt` for the wrong one).
    pub fn client_env(&self, ca: &str) -> Vec<(String, String)> {
        let arg = |name: &str| self.path(name).display().to_string();
        vec![
            super::var("EVM_EXECUTOR_STORAGE_PIKA_TLS", "true"),
            super::var("EVM_EXECUTOR_STORAGE_PIKA_TLS_CA_FILE", arg(ca)),
            super::var("EVM_EXECUTOR_STORAGE_PIKA_TLS_CERT_FILE", arg("client.crt")),
            super::var("EVM_EXECUTOR_STORAGE_PIKA_TLS_KEY_FILE", arg("client.key")),
        ]
    }
}
