#!/usr/bin/env python3
"""py-spiffe (PyPI `spiffe`) against `ward dev`: the reference Python client must get
everything the SPIFFE Workload API promises from ward's local authority.

Usage: py_spiffe_interop.py [WARD_BIN]   (or WARD_BIN in the environment)

Starts `ward dev` itself (trust domain example.org, one socket, a 2 s SVID lifetime so
rotation is quick, and a federated trust domain partner.org), then checks with py-spiffe:
  1. fetch_x509_svid: the SPIFFE ID, and the chain verifies against the bundle
     (cryptography: each link's signature, validity, CA flags; then openssl verify);
  2. fetch_x509_bundles / fetch_x509_context: own and federated trust domains, kept apart;
  3. fetch_jwt_svid: ID and audience; validate_jwt_svid through the API (and a wrong
     audience refused); local validation against fetch_jwt_bundles;
  4. JwtSource and X509Source start and serve;
  5. stream_x509_contexts sees a rotation (a new serial) within a bounded wait.
Prints one line per check and a final `py-spiffe interop: N passed, M failed`;
exits 1 when any check fails.
"""

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import grpc
from spiffe import JwtSource, JwtSvid, TrustDomain, WorkloadApiClient, X509Source

TD = "example.org"
PARTNER_TD = "partner.org"
APP_ID = f"spiffe://{TD}/interop/py"
AUDIENCE = "ward-interop"
READY_TIMEOUT = 60.0
CALL_TIMEOUT = 10.0
ROTATION_TIMEOUT = 10.0

RESULTS = []


def check(name):
    """Runs the decorated function as one named check, recording pass or fail."""

    def wrap(fn):
        def run(*args):
            try:
                fn(*args)
            except Exception as e:  # every failure is reported, none stops the others
                RESULTS.append((name, False))
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc(limit=3, file=sys.stdout)
                return False
            RESULTS.append((name, True))
            print(f"PASS {name}", flush=True)
            return True

        return run

    return wrap


def b64url(n: int, length: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(length, "big")).rstrip(b"=").decode()


def partner_bundle(path: str) -> x509.Certificate:
    """A SPIFFE bundle document for partner.org with one self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "partner CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{PARTNER_TD}")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    numbers = key.public_key().public_numbers()
    doc = {
        "keys": [
            {
                "kty": "EC",
                "use": "x509-svid",
                "crv": "P-256",
                "x": b64url(numbers.x, 32),
                "y": b64url(numbers.y, 32),
                "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()],
            }
        ],
        "spiffe_sequence": 1,
    }
    with open(path, "w") as f:
        json.dump(doc, f)
    return cert


def start_ward(ward_bin: str, workdir: str):
    sock = os.path.join(workdir, "api.sock")
    bundle = os.path.join(workdir, "partner.json")
    partner_bundle(bundle)
    cmd = [
        ward_bin, "dev",
        "--trust-domain", TD,
        "--socket", f"{sock}={APP_ID}",
        "--svid-ttl", "2s",
        "--federate", f"{PARTNER_TD}={bundle}",
    ]
    env = dict(os.environ, RUST_LOG="warn")
    env.pop("SPIFFE_ENDPOINT_SOCKET", None)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    ready = threading.Event()
    lines = []

    def read():
        for line in proc.stderr:
            lines.append(line.rstrip())
            if line.startswith("ward dev: serving "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(READY_TIMEOUT):
        proc.kill()
        raise RuntimeError(f"ward dev not ready within {READY_TIMEOUT}s: {lines}")
    print(f"started: {' '.join(cmd)}", flush=True)
    return proc, sock


class RawPathAuthorityClient(WorkloadApiClient):
    """py-spiffe's client sending the raw socket path as `:authority`, as grpc-java does.

    The stock client (grpc-core >= 1.57) sends the percent-encoded path instead. Both
    are malformed authorities to the upstream h2 crate, which resets the stream
    (grpc/grpc#38142, hyperium/h2#487); ward's vendored h2 treats them as absent, as
    SPIRE's Go server does. This client checks the second spelling.
    """

    def _get_spiffe_grpc_channel(self):
        path = self._config.spiffe_endpoint_socket.removeprefix("unix://")
        target = self._grpc_target(self._config.spiffe_endpoint_socket)
        channel = grpc.insecure_channel(target, options=[("grpc.default_authority", path)])
        from spiffe.workloadapi.grpc import header_manipulator_client_interceptor as hm
        from spiffe.workloadapi.workload_api_client import (
            WORKLOAD_API_HEADER_KEY, WORKLOAD_API_HEADER_VALUE)
        return grpc.intercept_channel(
            channel, hm.header_adder_interceptor(WORKLOAD_API_HEADER_KEY, WORKLOAD_API_HEADER_VALUE))


def verify_chain(chain, authorities):
    """Each certificate is signed by the next; the last by a bundle authority; all are
    within validity; the leaf is not a CA and the others are."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert in chain:
        assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc, "outside validity"
    leaf_bc = chain[0].extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not leaf_bc.ca, "leaf is a CA"
    for child, parent in zip(chain, chain[1:]):
        child.verify_directly_issued_by(parent)
    last = chain[-1]
    for root in authorities:
        try:
            last.verify_directly_issued_by(root)
            return
        except Exception:
            continue
    raise AssertionError("no bundle authority signed the chain")


def main() -> int:
    ward_bin = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WARD_BIN", "")
    if not ward_bin or not os.access(ward_bin, os.X_OK):
        print("usage: py_spiffe_interop.py WARD_BIN (or set WARD_BIN); "
              f"not an executable: {ward_bin!r}")
        print("py-spiffe interop: 0 passed, 1 failed")
        return 1

    workdir = tempfile.mkdtemp(prefix="ward-py-")
    proc = None
    try:
        proc, sock = start_ward(ward_bin, workdir)
        endpoint = f"unix://{sock}"
        td = TrustDomain(TD)
        state = {}

        # Every check below uses the stock client: grpc-core's default `:authority` for a
        # unix: channel is the percent-encoded socket path, which ward must accept.
        client = WorkloadApiClient(endpoint, default_timeout=CALL_TIMEOUT)

        @check("a client sending the raw socket path as :authority (as grpc-java does) reaches ward")
        def _():
            raw = RawPathAuthorityClient(endpoint, default_timeout=CALL_TIMEOUT)
            try:
                assert str(raw.fetch_x509_svid().spiffe_id) == APP_ID
            finally:
                raw.close()

        _()

        @check("fetch_x509_svid: SPIFFE ID and chain verify against the bundle")
        def _():
            svid = client.fetch_x509_svid()
            assert str(svid.spiffe_id) == APP_ID, f"got {svid.spiffe_id}"
            bundles = client.fetch_x509_bundles()
            bundle = bundles.get_bundle_for_trust_domain(td)
            assert bundle is not None, "no bundle for example.org"
            verify_chain(svid.cert_chain, bundle.x509_authorities)
            state["serial"] = svid.leaf.serial_number
            if shutil.which("openssl"):
                chain_pem = os.path.join(workdir, "svid.pem")
                ca_pem = os.path.join(workdir, "bundle.pem")
                with open(chain_pem, "wb") as f:
                    for c in svid.cert_chain:
                        f.write(c.public_bytes(serialization.Encoding.PEM))
                with open(ca_pem, "wb") as f:
                    for c in bundle.x509_authorities:
                        f.write(c.public_bytes(serialization.Encoding.PEM))
                out = subprocess.run(["openssl", "verify", "-CAfile", ca_pem, chain_pem],
                                     capture_output=True, text=True, timeout=30)
                assert out.returncode == 0, f"openssl verify: {out.stdout}{out.stderr}"

        _()

        @check("fetch_x509_bundles: own and federated trust domains, kept apart")
        def _():
            bundles = client.fetch_x509_bundles()
            names = sorted(str(b.trust_domain) for b in bundles.bundles)
            assert names == [TD, PARTNER_TD], f"got {names}"
            own = bundles.get_bundle_for_trust_domain(td).x509_authorities
            partner = bundles.get_bundle_for_trust_domain(TrustDomain(PARTNER_TD)).x509_authorities
            assert own and partner and not (own & partner), "bundles merged or empty"

        _()

        @check("fetch_x509_context: default SVID and bundle set")
        def _():
            ctx = client.fetch_x509_context()
            assert str(ctx.default_svid.spiffe_id) == APP_ID
            assert ctx.x509_bundle_set.get_bundle_for_trust_domain(td) is not None

        _()

        @check("fetch_jwt_svid + validate_jwt_svid through the API")
        def _():
            jwt = client.fetch_jwt_svid(audience={AUDIENCE})
            assert str(jwt.spiffe_id) == APP_ID, f"got {jwt.spiffe_id}"
            assert AUDIENCE in jwt.audience, f"got {jwt.audience}"
            assert jwt.expiry > time.time(), "already expired"
            validated = client.validate_jwt_svid(jwt.token, AUDIENCE)
            assert str(validated.spiffe_id) == APP_ID
            try:
                client.validate_jwt_svid(jwt.token, "someone-else")
            except Exception:
                pass
            else:
                raise AssertionError("a token for another audience was accepted")
            state["jwt"] = jwt.token

        _()

        @check("fetch_jwt_bundles: local JWT-SVID validation with py-spiffe")
        def _():
            bundles = client.fetch_jwt_bundles()
            bundle = bundles.get_bundle_for_trust_domain(td)
            assert bundle is not None and bundle.jwt_authorities, "no JWT keys for example.org"
            svid = JwtSvid.parse_and_validate(state["jwt"], bundle, {AUDIENCE})
            assert str(svid.spiffe_id) == APP_ID

        _()

        @check("JwtSource and X509Source start and serve")
        def _():
            jwt_source = JwtSource(workload_api_client=client, timeout_in_seconds=CALL_TIMEOUT)
            try:
                svid = jwt_source.fetch_svid(audience={AUDIENCE})
                assert str(svid.spiffe_id) == APP_ID
                assert jwt_source.get_bundle_for_trust_domain(td) is not None
            finally:
                jwt_source.close()
            x509_source = X509Source(workload_api_client=client, timeout_in_seconds=CALL_TIMEOUT)
            try:
                ctx = x509_source.get_x509_context()
                assert str(ctx.default_svid.spiffe_id) == APP_ID
            finally:
                x509_source.close()

        _()

        @check(f"stream_x509_contexts sees a rotation (new serial within {ROTATION_TIMEOUT:.0f}s)")
        def _():
            serials = []
            errors = []
            rotated = threading.Event()

            def on_success(ctx):
                serials.append(ctx.default_svid.leaf.serial_number)
                if len(set(serials)) > 1:
                    rotated.set()

            handler = client.stream_x509_contexts(on_success, errors.append)
            try:
                assert rotated.wait(ROTATION_TIMEOUT), (
                    f"serials seen: {len(serials)} ({len(set(serials))} distinct); errors: {errors}"
                )
            finally:
                handler.cancel()

        _()
        client.close()
    except Exception as e:
        RESULTS.append(("start ward dev and connect", False))
        print(f"FAIL start ward dev and connect: {e}", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"py-spiffe interop: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
