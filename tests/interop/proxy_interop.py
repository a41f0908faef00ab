"""ward's data path against curl, openssl s_client, py-spiffe spiffe-tls and Envoy.

Topology (all on 127.0.0.1, identities from one `ward dev`):
  echo app (plain HTTP, answers with the headers it got)
  ward inbound http  -> echo app     (as .../server, allows .../client, .../envoy, .../py)
  ward outbound      -> spiffe-tls server (expects .../py)
  ward outbound      -> Envoy server      (expects .../envoy)
Usage: proxy_interop.py WARD_BIN ENVOY_BIN
"""
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

TD = "example.org"
SERVER, CLIENT, OTHER = f"spiffe://{TD}/server", f"spiffe://{TD}/client", f"spiffe://{TD}/other"
ENVOY, PY = f"spiffe://{TD}/envoy", f"spiffe://{TD}/py"
results = []


def check(name, fn):
    try:
        fn()
        results.append((name, True, ""))
        print(f"PASS {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
        results.append((name, False, str(e)))
        print(f"FAIL {name}: {e}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, limit=20.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def wait_file(path, limit=20.0):
    end = time.time() + limit
    while time.time() < end and not os.path.exists(path):
        time.sleep(0.05)
    if not os.path.exists(path):
        raise RuntimeError(f"{path} never appeared")


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{self.command} {self.path}\n" + "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items())
        data = body.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)


def main():
    ward, envoy = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="ward-proxy-interop-")
    procs = []

    def spawn(name, cmd):
        log = open(os.path.join(work, name + ".log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        sock = lambda n: os.path.join(work, n + ".sock")  # noqa: E731
        ids = {"server": SERVER, "client": CLIENT, "other": OTHER, "envoy": ENVOY, "py": PY}
        dev = [ward, "dev", "--trust-domain", TD]
        for n, i in ids.items():
            dev += ["--socket", f"{sock(n)}={i}"]
        spawn("dev", dev)
        for n in ids:
            wait_file(sock(n))
        for n in ids:
            r = run([ward, "fetch", "x509", "--socket", f"unix://{sock(n)}", "--write", os.path.join(work, n)])
            if r.returncode != 0:
                raise RuntimeError(f"ward fetch for {n}: {r.stderr}")
        f = lambda n, file: os.path.join(work, n, file)  # noqa: E731

        echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        app = f"127.0.0.1:{echo.server_address[1]}"
        inbound = free_port()
        spawn("inbound", [ward, "inbound", "--listen", f"127.0.0.1:{inbound}", "--target", app, "--protocol", "http",
                          "--allow", CLIENT, ENVOY, PY, "--socket", f"unix://{sock('server')}"])
        wait_port(inbound)

        def curl_allowed():
            # curl cannot check a URI SAN: -k skips its name check; the chain check is
            # openssl's (below), and ward checks curl's certificate.
            r = run(["curl", "-sS", "-k", "--cert", f("client", "svid.pem"), "--key", f("client", "svid_key.pem"),
                     f"https://127.0.0.1:{inbound}/curl", "-H", "x-spiffe-id: spiffe://example.org/admin"])
            assert r.returncode == 0, r.stderr
            assert f"x-spiffe-id: {CLIENT}\n" in r.stdout and "admin" not in r.stdout, r.stdout

        def curl_denied():
            r = run(["curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}", "--cert", f("other", "svid.pem"),
                     "--key", f("other", "svid_key.pem"), f"https://127.0.0.1:{inbound}/x"])
            assert r.stdout == "403", f"status {r.stdout} {r.stderr}"

        def curl_h2():
            r = run(["curl", "-sS", "-k", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                     "--cert", f("client", "svid.pem"), "--key", f("client", "svid_key.pem"), f"https://127.0.0.1:{inbound}/h2"])
            assert r.stdout == "2 200", r.stdout + r.stderr

        def openssl_verifies_chain():
            r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{inbound}", "-CAfile", f("client", "bundle.pem"),
                     "-cert", f("client", "svid.pem"), "-key", f("client", "svid_key.pem"), "-verify_return_error",
                     "-brief"], input="")
            out = r.stdout + r.stderr
            assert "Verification: OK" in out, out
            assert SERVER in run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                                 input=ssl_peer_pem(inbound, f)).stdout

        def openssl_without_cert_is_refused():
            r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{inbound}", "-CAfile", f("client", "bundle.pem"),
                     "-brief"], input="GET / HTTP/1.0\r\n\r\n")
            assert "HTTP/1" not in r.stdout, r.stdout

        check("curl (mTLS, files from ward fetch) reaches the app with its SPIFFE ID; spoofed header dropped", curl_allowed)
        check("curl with a disallowed identity gets 403", curl_denied)
        check("curl --http2 negotiates h2 through ward inbound", curl_h2)
        check("openssl s_client verifies ward's chain against the bundle; leaf carries the server ID", openssl_verifies_chain)
        check("openssl s_client without a client certificate gets no answer", openssl_without_cert_is_refused)

        from spiffe import SpiffeId, WorkloadApiClient, X509Source
        from spiffetls import ListenOptions, dial, listen
        from spiffetls.tlsconfig.authorize import authorize_id

        py_source = X509Source(workload_api_client=WorkloadApiClient(f"unix://{sock('py')}"),
                               timeout_in_seconds=20)

        def spiffe_tls_client():
            conn = dial(f"127.0.0.1:{inbound}", py_source, authorize_fn=authorize_id(SpiffeId(SERVER)))
            conn.sendall(b"GET /py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except Exception:  # noqa: BLE001 - pyOpenSSL raises on close_notify/EOF
                    break
                if not chunk:
                    break
                data += chunk
            text = data.decode(errors="replace")
            assert text.split("\r\n")[0].endswith(" 200 OK") and f"x-spiffe-id: {PY}" in text, text

        check("spiffe-tls dial() (authorize_id server) through ward inbound", spiffe_tls_client)

        py_port = free_port()
        server = listen(f"127.0.0.1:{py_port}", py_source, ListenOptions(authorize_fn=authorize_id(SpiffeId(CLIENT))))

        def serve_once():
            for _ in range(4):
                try:
                    conn, _ = server.accept()
                    conn.do_handshake()
                    conn.recv(65536)
                    peer = conn.get_peer_certificate().to_cryptography()
                    from cryptography import x509
                    uri = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                        x509.UniformResourceIdentifier)[0]
                    body = f"spiffe-tls server saw {uri}\n".encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
                    conn.shutdown()
                    conn.close()
                except Exception:  # noqa: BLE001 - a refused handshake is one of the checks
                    pass

        threading.Thread(target=serve_once, daemon=True).start()

        def outbound(name, port, expect):
            lport = free_port()
            spawn(name, [ward, "outbound", "--listen", f"127.0.0.1:{lport}", "--upstream", f"127.0.0.1:{port}",
                         "--expect", expect, "--socket", f"unix://{sock('client')}"])
            wait_port(lport)
            return lport

        out_py = outbound("outbound-py", py_port, PY)

        def spiffe_tls_server():
            r = run(["curl", "-sS", f"http://127.0.0.1:{out_py}/"])
            assert f"spiffe-tls server saw {CLIENT}" in r.stdout, r.stdout + r.stderr

        check("ward outbound -> spiffe-tls listen() server (authorize_id client)", spiffe_tls_server)

        out_wrong = outbound("outbound-wrong", py_port, ENVOY)

        def wrong_expect():
            r = run(["curl", "-sS", f"http://127.0.0.1:{out_wrong}/"])
            assert r.returncode != 0, r.stdout
            log = open(os.path.join(work, "outbound-wrong.log")).read()
            assert PY in log and ENVOY in log, log

        check("ward outbound refuses the spiffe-tls server when it expects another ID", wrong_expect)

        if not os.access(envoy, os.X_OK):
            results.append(("envoy", False, f"no envoy binary at {envoy}"))
            print(f"FAIL envoy: no binary at {envoy}")
        else:
            envoy_checks(envoy, work, f, spawn, inbound, outbound)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if all(ok for _, ok, _ in results):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    failed = [n for n, ok, _ in results if not ok]
    print(f"proxy interop: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def ssl_peer_pem(port, f):
    r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-cert", f("client", "svid.pem"),
             "-key", f("client", "svid_key.pem")], input="")
    out = r.stdout
    start = out.index("-----BEGIN CERTIFICATE-----")
    end = out.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return out[start:end] + "\n"


def envoy_checks(envoy, work, f, spawn, inbound, outbound):
    client_port, server_port, admin_port = free_port(), free_port(), free_port()
    tls_files = lambda n: (  # noqa: E731
        "tls_certificates: [{certificate_chain: {filename: %s}, private_key: {filename: %s}}]"
        % (f(n, "svid.pem"), f(n, "svid_key.pem")))
    cfg = f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}
static_resources:
  listeners:
  - name: to_ward
    address: {{socket_address: {{address: 127.0.0.1, port_value: {client_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: to_ward
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config:
            virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, route: {{cluster: ward_inbound}}}}]}}]
  - name: spiffe_server
    address: {{socket_address: {{address: 127.0.0.1, port_value: {server_port}}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            {tls_files("envoy")}
            validation_context:
              trusted_ca: {{filename: {f("envoy", "bundle.pem")}}}
              match_typed_subject_alt_names: [{{san_type: URI, matcher: {{exact: "{CLIENT}"}}}}]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: spiffe_server
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: "/"}}, direct_response: {{status: 200, body: {{inline_string: "envoy ok\\n"}}}}}}]
              response_headers_to_add: [{{header: {{key: x-envoy-saw, value: "%DOWNSTREAM_PEER_URI_SAN%"}}}}]
  clusters:
  - name: ward_inbound
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: ward_inbound
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {inbound}}}}}}}}}]}}]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          {tls_files("envoy")}
          validation_context:
            trusted_ca: {{filename: {f("envoy", "bundle.pem")}}}
            match_typed_subject_alt_names: [{{san_type: URI, matcher: {{exact: "{SERVER}"}}}}]
"""
    path = os.path.join(work, "envoy.yaml")
    open(path, "w").write(cfg)
    spawn("envoy", [envoy, "-c", path, "--concurrency", "1", "--log-level", "warn", "--base-id", str(os.getpid() % 60000)])
    try:
        wait_port(client_port, 30)
        wait_port(server_port, 30)
    except RuntimeError as e:
        results.append(("envoy start", False, str(e)))
        print(f"FAIL envoy did not start: {e}; see {work}/envoy.log")
        return

    def envoy_client():
        r = run(["curl", "-sS", f"http://127.0.0.1:{client_port}/via-envoy"])
        assert f"x-spiffe-id: {ENVOY}\n" in r.stdout, r.stdout + r.stderr

    def envoy_server():
        out = outbound("outbound-envoy", server_port, ENVOY)
        r = run(["curl", "-sS", "-i", f"http://127.0.0.1:{out}/"])
        assert "envoy ok" in r.stdout and f"x-envoy-saw: {CLIENT}" in r.stdout, r.stdout + r.stderr

    check("Envoy (URI SAN match on the server) as a client of ward inbound", envoy_client)
    check("ward outbound -> Envoy requiring a client cert with URI SAN match", envoy_server)


if __name__ == "__main__":
    sys.exit(main())
