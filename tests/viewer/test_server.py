"""The viewer's server: read-only, only files under the report folder, the page's data escaped."""

from __future__ import annotations

import http.client
import json
import threading

import pytest

from tests.viewer.conftest import XSS_SITE, write_planted_report


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(report folder, port) of a running server; a secret file and a symlink out lie beside/inside it."""
    from auditkit.viewer.server import make_server

    base = tmp_path_factory.mktemp("served")
    folder = base / "reports" / "planted"
    write_planted_report(folder, n=4)
    (base / "reports" / "secret.json").write_text('{"secret": true}')
    (folder / "explain" / "link.json").symlink_to(base / "reports" / "secret.json")
    server = make_server(folder, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, server.server_address[1]
    server.shutdown()
    server.server_close()


def _request(port: int, path: str, method: str = "GET") -> tuple[int, bytes, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def test_the_page_and_the_report_files_are_served(served):
    folder, port = served
    status, body, headers = _request(port, "/")
    assert status == 200 and b"Saliency review" in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    status, body, _ = _request(port, "/results.json")
    assert status == 200 and json.loads(body) == json.loads((folder / "results.json").read_text())
    image = json.loads((folder / "explain/cases.json").read_text())["cases"][0]["image"]
    status, body, headers = _request(port, "/" + image)
    assert status == 200 and body == (folder / image).read_bytes() and headers["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.json",
        "/explain/../../secret.json",
        "/%2e%2e/secret.json",
        "/explain/%2E%2E/%2e%2e/secret.json",
        "/%252e%252e/secret.json",
        "/..%2fsecret.json",
        "/explain%5c..%5c..%5csecret.json",
        "/explain/link.json",
        "//etc/passwd",
        "/%00results.json",
        "/explain/cases/case00.npz",
    ],
)
def test_nothing_outside_the_report_folder_or_of_another_type_is_served(served, path):
    status, body, _ = _request(served[1], path)
    assert status == 404
    assert b"secret" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head_are_answered(served, method):
    status, _, headers = _request(served[1], "/results.json", method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_head_gives_the_headers_without_a_body(served):
    folder, port = served
    status, body, headers = _request(port, "/results.json", "HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == len((folder / "results.json").read_bytes())


def test_markup_in_the_data_cannot_close_the_script_element(tmp_path):
    from auditkit.viewer.data import build_payload
    from auditkit.viewer.page import render_page

    write_planted_report(tmp_path / "r", n=12)
    html = render_page(build_payload(tmp_path / "r"))
    assert XSS_SITE not in html  # only its escaped JSON form is in the page
    assert html.count("</script>") == 2  # the data block's and the code's own
    start = html.index('<script id="auditkit-data" type="application/json">') + len(
        '<script id="auditkit-data" type="application/json">'
    )
    data = json.loads(html[start : html.index("</script>", start)])
    assert XSS_SITE in data["payload"]["cohorts"]


def test_view_command_says_it_is_bound_to_localhost(tmp_path, monkeypatch, capsys):
    from auditkit.cli import run
    from auditkit.viewer import server as server_module

    write_planted_report(tmp_path / "r", n=4)
    made = []

    class Stop(KeyboardInterrupt):
        pass

    original = server_module.make_server

    def fake(report, **kwargs):
        server = original(report, **{**kwargs, "port": 0})
        server.serve_forever = lambda: (_ for _ in ()).throw(Stop())
        made.append(server)
        return server

    monkeypatch.setattr(server_module, "make_server", fake)
    capsys.readouterr()
    assert run(["view", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "bound to 127.0.0.1:" in out and "this machine only" in out
    assert made[0].server_address[0] == "127.0.0.1"


def test_view_of_a_folder_without_results_is_one_line_and_exit_2(tmp_path, capsys):
    from auditkit.cli import run

    capsys.readouterr()
    assert run(["view", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results.json" in err


def test_view_export_writes_one_file_and_refuses_to_overwrite(tmp_path, capsys):
    from auditkit.cli import run

    write_planted_report(tmp_path / "r", n=4)
    capsys.readouterr()
    out = tmp_path / "viewer.html"
    assert run(["view", str(tmp_path / "r"), "--export", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    cases = json.loads((tmp_path / "r" / "explain/cases.json").read_text())["cases"]
    assert html.count("data:image/png;base64,") == sum(1 + len(c["maps"]) + (c["mask"] is not None) for c in cases)
    assert run(["view", str(tmp_path / "r"), "--export", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert run(["view", str(tmp_path / "r"), "--export", str(out), "--assets", "viewer_files", "--force"]) == 0
    assert "data:image" not in out.read_text(encoding="utf-8")
    script = (tmp_path / "viewer_files" / "images.js").read_text(encoding="utf-8")
    assert script.count("data:image/png;base64,") == sum(1 + len(c["maps"]) + (c["mask"] is not None) for c in cases)
    assert run(["view", str(tmp_path / "r"), "--export", str(out), "--assets", "../up", "--force"]) == 2


def test_an_audit_without_case_records_is_one_line_and_exit_2(tmp_path, capsys):
    from auditkit.cli import run

    write_planted_report(tmp_path / "r", n=4)
    (tmp_path / "r" / "explain" / "cases.json").unlink()
    capsys.readouterr()  # the fixture's progress bar
    assert run(["view", str(tmp_path / "r"), "--export", str(tmp_path / "v.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no case records" in err
