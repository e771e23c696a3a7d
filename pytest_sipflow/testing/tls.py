"""TLS files for a test server, made per run with trustme: nothing secret is committed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_sipflow.sip import LOOPBACK


@dataclass(frozen=True)
class TlsFiles:
    """Certificates made for one run (PEM paths): nothing secret is ever committed."""

    ca: Path            # the CA that signed the server and client certificates
    cert: Path          # the server's certificate chain (IP 127.0.0.1 and names)
    key: Path           # the server's private key
    client_cert: Path   # a client certificate from the same CA (mutual TLS)
    client_key: Path
    wrong_ca: Path      # an unrelated CA: verifying the server with it must fail


def generate_tls_files(directory: Path, names: tuple[str, ...] = (LOOPBACK, "localhost")
                       ) -> TlsFiles:
    """Make a CA, a server and a client certificate, and an unrelated CA, with trustme."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca, wrong = trustme.CA(organization_name="sipflow test CA"), trustme.CA()
    server = ca.issue_cert(*dict.fromkeys(names))
    client = ca.issue_cert("sipflow-client.test")
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "server.pem",
                     key=directory / "server.key", client_cert=directory / "client.pem",
                     client_key=directory / "client.key", wrong_ca=directory / "wrong-ca.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    wrong.cert_pem.write_to_path(str(files.wrong_ca))
    for cert, pem, key in ((server, files.cert, files.key),
                           (client, files.client_cert, files.client_key)):
        pem.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
    return files
