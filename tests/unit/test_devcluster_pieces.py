"""The dev cluster's building blocks, without starting Kubernetes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tenantflow_dev.devcluster import process
from tenantflow_dev.devcluster.pki import CertificateAuthority, service_account_keys


def test_issued_certificates_chain_to_the_ca_and_carry_identity(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    serving = ca.issue(
        "api", cn="kube-apiserver", server_names=("localhost",), server_ips=("127.0.0.1",)
    )
    admin = ca.issue("admin", cn="admin", org="system:masters")
    ca_cert = x509.load_pem_x509_certificate(ca.pair.cert.read_bytes())
    for pair in (serving, admin):
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
        assert pair.key.stat().st_mode & 0o077 == 0, "private keys must not be world-readable"
    s = x509.load_pem_x509_certificate(serving.cert.read_bytes())
    sans = s.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    a = x509.load_pem_x509_certificate(admin.cert.read_bytes())
    assert a.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    eku = a.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_service_account_keys_are_a_matching_pair(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    pair = service_account_keys(tmp_path)
    priv = serialization.load_pem_private_key(pair.key.read_bytes(), None)
    pub = serialization.load_pem_public_key(pair.cert.read_bytes())
    assert priv.public_key().public_numbers() == pub.public_numbers()  # type: ignore[union-attr]


def test_processes_are_found_by_marker_and_stopped(tmp_path: Path) -> None:
    script = "import time; time.sleep(60)"
    pid = process.spawn(
        "sleeper",
        [sys.executable, "-c", script, str(tmp_path / "data")],
        tmp_path / "logs",
        tmp_path,
    ).pid
    assert process.is_ours(pid, tmp_path)
    assert pid in process.owned_pids(tmp_path)
    assert (tmp_path / "sleeper.pid").read_text() == str(pid)
    other = tmp_path.parent / (tmp_path.name + "-other")
    other.mkdir()
    assert not process.is_ours(pid, other), "a pid must match only its own cluster's marker"
    process.stop([pid], tmp_path, timeout=5)
    assert not process.is_ours(pid, tmp_path)
    assert process.owned_pids(tmp_path) == []


def test_free_port_is_bindable() -> None:
    import socket

    port = process.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_an_image_whose_layers_did_not_change_is_tagged_with_each_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause image's layer is the same in every version: a cache keyed by its manifest
    alone kept the archive of the first version, and the node imported `pause:0.1.0` where
    its containerd asked for `pause:0.2.0-dev` (no pod could start)."""
    import json
    import tarfile

    from tenantflow_dev.devcluster import images

    monkeypatch.setenv("TENANTFLOW_CACHE", str(tmp_path / "cache"))
    images.images_dir().mkdir(parents=True)
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w"):
        pass
    names = []
    for version in ("0.1.0", "0.2.0-dev"):
        monkeypatch.setattr(images, "project_version", lambda v=version: v)
        built = images._archive("pause", [layer], {"User": "65535"})
        with tarfile.open(built.archive) as tar:
            index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        names.append(index["manifests"][0]["annotations"]["io.containerd.image.name"])
        assert built.ref == names[-1]
    assert names == ["localhost/tenantflow/pause:0.1.0", "localhost/tenantflow/pause:0.2.0-dev"]


def test_the_image_is_built_from_this_machines_debian_mirrors_for_its_own_suite(
    tmp_path: Path,
) -> None:
    """The host's suites become the image's (bookworm-security: trixie-security) on the
    host's mirrors and keyrings; a vendor's repository and deb-src stay out."""
    from tenantflow_dev.devcluster import images
    from tenantflow_dev.devcluster.imagedefs import DEBIAN_SUITE

    sources = tmp_path / "apt" / "sources.list.d"
    sources.mkdir(parents=True)
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
        "Components: main\n"
    )
    (sources / "vendor.sources").write_text(
        "Types: deb\nURIs: https://vendor.example/repo\nSuites: nodistro\nComponents: main\n"
    )
    (tmp_path / "apt" / "sources.list").write_text(
        "# a comment\ndeb http://mirror.example/debian-security bookworm-security main\n"
    )
    keyring = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    assert images._mirrors(tmp_path, host="bookworm") == [
        f"deb {keyring}http://mirror.example/debian {DEBIAN_SUITE} main",
        f"deb {keyring}http://mirror.example/debian {DEBIAN_SUITE}-updates main",
        f"deb http://mirror.example/debian-security {DEBIAN_SUITE}-security main",
    ]


def test_a_client_verifying_strictly_accepts_the_api_servers_certificate(tmp_path: Path) -> None:
    """The images' Python (3.13) verifies TLS with VERIFY_X509_STRICT by default: a chain
    without key identifiers failed ('Missing Authority Key Identifier') and the operator
    could not reach the dev cluster's API server. A real handshake on loopback, strict."""
    import socket
    import ssl
    import threading

    ca = CertificateAuthority(tmp_path)
    serving = ca.issue("api", cn="kube-apiserver", server_ips=("127.0.0.1",))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(serving.cert, serving.key)
    client_ctx = ssl.create_default_context(cafile=str(ca.pair.cert))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=10)
