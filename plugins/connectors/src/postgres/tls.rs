//! TLS for the connector: libpq's `sslmode`s and `sslrootcert` over rustls (with the `ring`
//! provider), plugged into tokio-postgres through its `MakeTlsConnect` trait.
//!
//! | sslmode | TLS | certificate check |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers it | none |
//! | `require` | always | none; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca` | always | chain to a trusted root |
//! | `verify-full` | always | chain, and the host name |

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use ::postgres::Socket;
use ::postgres::config::SslMode as DriverMode;
use ::postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_plugin::ConfigIssue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without a certificate check.
    Prefer,
    /// TLS always; the certificate is checked only with `sslrootcert`.
    Require,
    /// TLS, and the certificate chain must lead to a trusted root.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

/// The valid `sslmode` values, for messages.
const MODES: &str = "disable, prefer, require, verify-ca, verify-full";

impl SslMode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode as written in a connection string.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether to ask for TLS, and whether it must be had.
    pub(crate) fn driver_mode(self) -> DriverMode {
        match self {
            SslMode::Disable => DriverMode::Disable,
            SslMode::Prefer => DriverMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverMode::Require,
        }
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone)]
enum Roots {
    /// `sslrootcert=PATH`, read when the options are.
    File { path: PathBuf, store: Arc<RootCertStore> },
    /// The system's roots (`sslrootcert=system`, or verify-ca/verify-full without sslrootcert).
    System,
}

/// The TLS settings of one connection string.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    /// The `sslmode`.
    pub mode: SslMode,
    /// `None` for `sslmode`s that check no certificate and no `sslrootcert`.
    roots: Option<Roots>,
}

impl TlsSettings {
    /// From the `sslmode` and `sslrootcert` of a connection string; a relative `sslrootcert`
    /// resolves against `base_dir`, like every path of a pipeline. The root file is read
    /// here, so `validate` reports a missing or broken one.
    pub(crate) fn new(
        sslmode: Option<&str>,
        sslrootcert: Option<&str>,
        base_dir: &Path,
    ) -> Result<Self, ConfigIssue> {
        let mode = match sslmode {
            None if sslrootcert == Some("system") => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some(m) => SslMode::parse(m).ok_or_else(|| {
                ConfigIssue::new("url", format!("has an unknown sslmode `{m}`"))
                    .with_help(format!("sslmode is one of {MODES}"))
            })?,
        };
        let roots = match sslrootcert {
            // libpq's rule: the system's roots vouch for any public name, so a check without the
            // host name would accept any website's certificate.
            Some("system") if mode != SslMode::VerifyFull => {
                return Err(ConfigIssue::new(
                    "url",
                    format!("has sslrootcert=system with sslmode={}", mode.name()),
                )
                .with_help(
                    "the system's roots need sslmode=verify-full, the default with sslrootcert=system",
                ));
            }
            Some("system") => Some(Roots::System),
            Some(p) => {
                let path = if Path::new(p).is_absolute() { PathBuf::from(p) } else { base_dir.join(p) };
                let store = read_roots(&path)?;
                Some(Roots::File { path, store: Arc::new(store) })
            }
            None if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => Some(Roots::System),
            None => None,
        };
        Ok(TlsSettings { mode, roots })
    }

    /// The roots to check the server's chain against (`None`: no certificate check).
    fn trusted(&self) -> Result<Option<Arc<RootCertStore>>, String> {
        match (self.mode, &self.roots) {
            (SslMode::Disable | SslMode::Prefer, _) | (_, None) => Ok(None),
            (_, Some(Roots::File { store, .. })) => Ok(Some(store.clone())),
            (_, Some(Roots::System)) => system_roots().map(Some),
        }
    }

    /// The connector tokio-postgres uses for every host it tries. `Err` is a message for the
    /// `url` key (the system has no root certificates).
    pub(crate) fn connector(&self) -> Result<MakeRustls, String> {
        let roots = self.trusted().map_err(|why| {
            format!(
                "sslmode={} without sslrootcert checks the server against the system's root certificates, but {why}; \
                 name the CA file with sslrootcert=/path/to/ca.pem",
                self.mode.name()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let check_name = self.mode == SslMode::VerifyFull;
        let verifier = Verifier { roots, check_name, algs: provider.signature_verification_algorithms };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS cannot be set up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // PostgreSQL 17 requires this ALPN name for direct TLS and accepts it otherwise;
        // older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustls { config: Arc::new(config), check_name })
    }

    /// What went wrong in a handshake, with a hint at the fix.
    pub(crate) fn explain(&self, failure: &TlsFailure) -> String {
        let mode = self.mode.name();
        let skip_check =
            "to encrypt without checking the certificate, use sslmode=require without sslrootcert";
        match failure {
            TlsFailure::Certificate(e) => {
                let (why, hint) = match e {
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
                        e.to_string(),
                        "connect with a host name the certificate lists, or use sslmode=verify-ca to check \
                         only that a trusted root signed it"
                            .to_owned(),
                    ),
                    CertificateError::UnknownIssuer => {
                        let roots = match &self.roots {
                            Some(Roots::File { path, .. }) => {
                                format!("a root certificate in sslrootcert `{}`", path.display())
                            }
                            _ => "a root certificate of this system".to_owned(),
                        };
                        (
                            format!("it is not signed by {roots}"),
                            format!(
                                "name the CA that signed it with sslrootcert=/path/to/ca.pem; {skip_check}"
                            ),
                        )
                    }
                    other => (describe_certificate_error(other), skip_check.to_owned()),
                };
                format!("the server's certificate did not verify (sslmode={mode}): {why}; {hint}")
            }
            TlsFailure::BadName(host) => format!(
                "sslmode=verify-full cannot check the host `{host}` against a certificate (it is no DNS \
                 name or IP address); use sslmode=verify-ca to check only the chain"
            ),
            TlsFailure::Handshake(why) => format!("the TLS handshake failed (sslmode={mode}): {why}"),
        }
    }
}

/// Words for the certificate errors whose `Display` is only the variant's name.
fn describe_certificate_error(e: &CertificateError) -> String {
    match e {
        CertificateError::BadEncoding => "it cannot be parsed".into(),
        CertificateError::Expired => "it has expired".into(),
        CertificateError::NotValidYet => "it is not valid yet".into(),
        CertificateError::BadSignature => "its signature is invalid".into(),
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::InvalidPurpose => "it is not meant for TLS servers".into(),
        other => other.to_string(),
    }
}

/// The certificates of a PEM file, as trusted roots.
fn read_roots(path: &Path) -> Result<RootCertStore, ConfigIssue> {
    let shown = path.display();
    let help = "sslrootcert names a PEM file with the certificate(s) of the CA that signed the server's \
                certificate; a relative path starts at the pipeline's folder";
    let issue = |msg: String| ConfigIssue::new("url", msg).with_help(help);
    let bytes =
        std::fs::read(path).map_err(|e| issue(format!("sslrootcert `{shown}` cannot be read: {e}")))?;
    let mut store = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| issue(format!("sslrootcert `{shown}` is not a valid PEM file: {e}")))?;
        store.add(cert).map_err(|e| {
            let why = match e {
                rustls::Error::InvalidCertificate(c) => describe_certificate_error(&c),
                other => other.to_string(),
            };
            issue(format!(
                "certificate {} of sslrootcert `{shown}` is not a valid root certificate: {why}",
                i + 1
            ))
        })?;
    }
    if store.is_empty() {
        return Err(issue(format!(
            "sslrootcert `{shown}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(store)
}

/// The system's root certificates, read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            match (store.is_empty(), found.errors.first()) {
                (false, _) => Ok(Arc::new(store)),
                (true, Some(e)) => Err(format!("none could be loaded ({e})")),
                (true, None) => Err("none were found".into()),
            }
        })
        .clone()
}

/// Checks the server's certificate as the `sslmode` asks.
#[derive(Debug)]
struct Verifier {
    /// `None`: no check (libpq's `prefer` and `require`: encryption, not authentication).
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algs.all)?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    // The handshake signatures are always checked: they prove the server holds the key of
    // the certificate it sent, whether or not that certificate is trusted.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Why a TLS handshake failed; tokio-postgres keeps it as the source of its error.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    /// The server's certificate did not pass the checks of the `sslmode`.
    Certificate(CertificateError),
    /// `verify-full` with a host that cannot be matched against a certificate.
    BadName(String),
    /// Anything else (protocol versions, an alert from the server, a closed connection).
    Handshake(String),
}

impl TlsFailure {
    fn from_io(e: io::Error) -> Self {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(c)) => TlsFailure::Certificate(c.clone()),
            Some(other) => TlsFailure::Handshake(other.to_string()),
            None => TlsFailure::Handshake(e.to_string()),
        }
    }

    /// The TLS failure behind a connection error, if that is what it was.
    pub(crate) fn of(e: &::postgres::Error) -> Option<&TlsFailure> {
        let mut cause: Option<&(dyn Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(f) = c.downcast_ref::<TlsFailure>() {
                return Some(f);
            }
            cause = c.source();
        }
        None
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Certificate(e) => {
                write!(f, "the server's certificate did not verify: {}", describe_certificate_error(e))
            }
            TlsFailure::BadName(host) => write!(f, "`{host}` cannot be checked against a certificate"),
            TlsFailure::Handshake(why) => write!(f, "the TLS handshake failed: {why}"),
        }
    }
}

impl Error for TlsFailure {}

/// Makes a [`RustlsConnect`] for each host tokio-postgres tries.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    config: Arc<ClientConfig>,
    check_name: bool,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream<Socket>;
    type TlsConnect = RustlsConnect;
    type Error = TlsFailure;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsFailure> {
        // Never fails: tokio-postgres asks even when TLS will not be used (sslmode=disable,
        // Unix sockets), so the name is only checked when a handshake starts.
        Ok(RustlsConnect {
            config: self.config.clone(),
            domain: domain.to_owned(),
            check_name: self.check_name,
        })
    }
}

/// One TLS handshake over a connected socket.
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    domain: String,
    check_name: bool,
}

impl RustlsConnect {
    fn server_name(&self) -> Result<ServerName<'static>, TlsFailure> {
        match ServerName::try_from(self.domain.clone()) {
            Ok(name) => Ok(name),
            // The name only matters to verify-full; any placeholder (an IP sends no SNI) works.
            Err(_) if !self.check_name => Ok(ServerName::IpAddress(Ipv4Addr::UNSPECIFIED.into())),
            Err(_) => Err(TlsFailure::BadName(self.domain.clone())),
        }
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = TlsFailure;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, TlsFailure>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self.server_name()?;
            tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await
                .map(RustlsStream)
                .map_err(TlsFailure::from_io)
        })
    }
}

/// An established TLS session, as tokio-postgres reads and writes it.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM channel binding (tls-server-end-point) is not offered; SCRAM then runs without
        // it unless the connection string says channel_binding=require.
        ChannelBinding::none()
    }
}
