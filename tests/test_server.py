"""`memabra serve`: a real uvicorn server on 127.0.0.1 spoken to with a real HTTP client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from memabra.learning.routers import HeuristicRouter
from memabra.server import main as serve_main
from memabra.server import server_settings
from memabra.server.command import build_server, listen_socket
from memabra.status import store_status
from memabra.storage.trajectories import TrajectoryStore
from memabra.storage.versions import RouterVersionStore
from tests.helpers import ROOT

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT_S = 30.0
TASK = {"task_id": "t-1", "text": "find the release date of the report"}
CANDIDATES = [
    {"candidate_id": "mem", "kind": "memory", "name": "notes", "score": 0.2},
    {"candidate_id": "tool", "kind": "tool", "name": "search", "score": 0.9},
    {"candidate_id": "ask", "kind": "clarify", "score": 0.1},
]


@contextmanager
def running_server(base_dir: Path, token: str | None = TOKEN, **overrides):
    """Serve base_dir on a free 127.0.0.1 port in a thread; always stopped, every wait bounded."""
    settings = server_settings(base_dir=base_dir, host="127.0.0.1", port=0, token=token, environ={}, **overrides)
    server = build_server(settings)
    sock = listen_socket("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    try:
        while not server.started:
            assert thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT_S)
        sock.close()
    assert not thread.is_alive(), "the server did not stop in time"


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=WAIT_S)


def trajectory(trajectory_id: str | None = None, reward: float = 1.0) -> dict:
    document = {"task": TASK, "candidates": CANDIDATES,
                "decision": {"chosen_candidate_id": "tool", "propensity": 0.8, "scores": {"tool": 0.9}},
                "outcome": {"reward": reward, "latency_ms": 120.0}}
    if trajectory_id is not None:
        document["trajectory_id"] = trajectory_id
    return document


def jsonl(documents: list) -> bytes:
    return b"".join(orjson.dumps(document) + b"\n" for document in documents)


def stored_ids(base_dir: Path) -> list[str]:
    trajectories, invalid = TrajectoryStore(base_dir).load_all()
    assert invalid == []
    return [item.trajectory_id for item in trajectories]


@pytest.fixture(autouse=True)
def greedy_exploration(monkeypatch):
    monkeypatch.setenv("MEMABRA_EXPLORATION", "greedy")
    monkeypatch.delenv("MEMABRA_API_TOKEN", raising=False)


def test_status_is_the_cli_status_document(seeded_store):
    with running_server(seeded_store) as url, client(url) as http:
        response = http.get("/v1/status")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(orjson.dumps(store_status(seeded_store).document()))
    assert response.json()["trajectory_count"] == 2000


def test_route_answers_the_active_routers_decision_and_sees_a_promotion_within_a_second(seeded_store):
    with running_server(seeded_store) as url, client(url) as http:
        decision = http.post("/v1/route", json={"task": TASK, "candidates": CANDIDATES}).json()
        assert decision["chosen_candidate_id"] == "tool" and decision["propensity"] == 1.0
        assert decision["router_version_id"] is None
        assert decision["scores"] == {"mem": 0.2, "tool": 0.9, "ask": 0.1}

        versions = RouterVersionStore(seeded_store)
        version = versions.save(HeuristicRouter())
        versions.promote(version)
        promoted_at = time.monotonic()
        seen = None
        while time.monotonic() - promoted_at < 1.0:
            answer = http.post("/v1/route", json={"task": TASK, "candidates": CANDIDATES}).json()
            if answer["router_version_id"] == version.version_id:
                seen = time.monotonic() - promoted_at
                break
            time.sleep(0.02)
        assert seen is not None, "the promotion was not served within a second"


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 422, "not an object"),
    (orjson.dumps({"task": TASK}), 422, "no candidates"),
    (orjson.dumps({"task": TASK, "candidates": []}), 422, "at least one candidate"),
    (orjson.dumps({"task": TASK, "candidates": [{"candidate_id": "x", "kind": "spell"}]}), 422, "candidates[0]"),
])
def test_route_refuses_bad_documents_with_a_json_error(tmp_path, body, status, fragment):
    with running_server(tmp_path / "store", read_only=True, token=None) as url, client(url) as http:
        response = http.post("/v1/route", content=body)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_unknown_paths_and_methods_answer_json_errors(tmp_path):
    with running_server(tmp_path / "store") as url, client(url) as http:
        missing = http.get("/v1/nothing")
        wrong_method = http.get("/v1/route")
    assert missing.status_code == 404 and "/v1/nothing" in missing.json()["error"]
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["error"]
    assert wrong_method.headers["allow"] == "POST"


def test_posted_lines_are_stored_refused_by_line_and_a_retry_stores_nothing_twice(tmp_path):
    base = tmp_path / "store"
    body = jsonl([trajectory("a-1"), trajectory(reward=0.5)]) + b"\n" + jsonl([
        {**trajectory("bad-1"), "outcome": {"reward": 1.0, "latency_ms": -3}}, trajectory("a-2")])
    with running_server(base) as url, client(url) as http:
        first = http.post("/v1/trajectories", content=body, headers=AUTH).json()
        retried = http.post("/v1/trajectories", content=body, headers=AUTH).json()
        status = http.get("/v1/status").json()
    assert first["stored_count"] == 3 and first["duplicate_count"] == 0 and first["invalid_count"] == 1
    assert first["invalid"] == [{"line": 4, "field": "outcome.latency_ms",
                                 "error": first["invalid"][0]["error"]}]
    assert "greater than or equal to 0" in first["invalid"][0]["error"]
    assert retried["stored_count"] == 0 and retried["duplicate_count"] == 3 and retried["invalid_count"] == 1
    assert status["trajectory_count"] == 3
    ids = stored_ids(base)
    assert len(ids) == 3 and {"a-1", "a-2"} <= set(ids)


def test_a_body_of_only_refused_lines_is_422_and_an_empty_body_400(tmp_path):
    with running_server(tmp_path / "store") as url, client(url) as http:
        refused = http.post("/v1/trajectories", content=b'{"task": 1}\nnope\n', headers=AUTH)
        empty = http.post("/v1/trajectories", content=b"\n", headers=AUTH)
    assert refused.status_code == 422 and refused.json()["invalid_count"] == 2
    assert refused.json()["error"].startswith("all 2 lines were refused (first: line 1")
    assert empty.status_code == 400 and "one trajectory per line" in empty.json()["error"]


def test_writes_without_the_right_token_are_refused_and_store_nothing(tmp_path):
    base = tmp_path / "store"
    body = jsonl([trajectory("t-1")])
    with running_server(base) as url, client(url) as http:
        missing = http.post("/v1/trajectories", content=body)
        wrong = http.post("/v1/trajectories", content=body, headers={"Authorization": "Bearer nope"})
        not_bearer = http.post("/v1/trajectories", content=body, headers={"Authorization": f"Basic {TOKEN}"})
        reads = http.get("/v1/status").json()
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["error"]
    assert wrong.status_code == 403 and "token is wrong" in wrong.json()["error"]
    assert not_bearer.status_code == 401
    assert reads["trajectory_count"] == 0 and stored_ids(base) == []


def test_a_read_only_server_needs_no_token_and_refuses_writes(tmp_path):
    with running_server(tmp_path / "store", token=None, read_only=True) as url, client(url) as http:
        write = http.post("/v1/trajectories", content=jsonl([trajectory("t-1")]), headers=AUTH)
        route = http.post("/v1/route", json={"task": TASK, "candidates": CANDIDATES})
    assert write.status_code == 403 and "read-only" in write.json()["error"]
    assert route.status_code == 200


def test_bodies_over_the_limit_are_refused_naming_the_limit(tmp_path):
    base = tmp_path / "store"
    body = jsonl([trajectory(f"big-{index}") for index in range(40)])
    assert len(body) > 4096
    with running_server(base, max_body_bytes=4096) as url:
        with client(url) as http:
            declared = http.post("/v1/trajectories", content=body, headers=AUTH)
        with client(url) as http:
            streamed = http.post("/v1/trajectories", content=iter([body[:3000], body[3000:]]), headers=AUTH)
        with client(url) as http:
            route = http.post("/v1/route", content=b" " * 5000)
            small = http.post("/v1/trajectories", content=jsonl([trajectory("small-1")]), headers=AUTH)
    for response in (declared, streamed, route):
        assert response.status_code == 413
        assert response.json()["error"].startswith("request body is over the 4,096-byte limit")
    assert small.status_code == 200 and stored_ids(base) == ["small-1"]


def test_a_body_that_stops_arriving_is_refused_after_the_request_timeout(tmp_path):
    with running_server(tmp_path / "store", request_timeout_s=0.5) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as connection:
            connection.sendall(b"POST /v1/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"task\"")
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert orjson.loads(body) == {"error": "the request body did not arrive within 0.5 s"}


def test_four_concurrent_writers_store_ten_thousand_each_exactly_once(tmp_path):
    base = tmp_path / "store"
    writers, per_writer, batch = 4, 10_000, 1_000
    batches = [[jsonl([trajectory(f"w{writer}-{uuid.uuid4().hex}") for _ in range(batch)])
                for _ in range(per_writer // batch)] for writer in range(writers)]

    def write(writer: int) -> list[dict]:
        # Each writer also retries its own first batch and posts its neighbour's first batch: duplicates race.
        bodies = [*batches[writer], batches[writer][0], batches[(writer + 1) % writers][0]]
        with client(url) as http:
            return [http.post("/v1/trajectories", content=body, headers=AUTH).json() for body in bodies]

    with running_server(base) as url:
        with ThreadPoolExecutor(writers) as pool:
            answers = [answer for answers in pool.map(write, range(writers)) for answer in answers]
    assert sum(answer["stored_count"] for answer in answers) == writers * per_writer
    assert sum(answer["duplicate_count"] for answer in answers) == 2 * writers * batch
    assert all(answer["invalid_count"] == 0 for answer in answers)
    ids = stored_ids(base)
    assert len(ids) == len(set(ids)) == writers * per_writer


def test_ids_stored_by_other_processes_are_skipped(tmp_path):
    from memabra.storage.trajectories import TrajectoryWriter

    base = tmp_path / "store"
    with TrajectoryWriter(base) as writer:
        writer.append(trajectory("before-start"))
    with running_server(base) as url, client(url) as http:
        other = TrajectoryWriter(base)
        other.append(trajectory("while-running"))  # an open journal of another writer
        answer = http.post("/v1/trajectories", headers=AUTH,
                           content=jsonl([trajectory("before-start"), trajectory("while-running"), trajectory("new")]))
        other.close()
    assert answer.json()["stored_count"] == 1 and answer.json()["duplicate_count"] == 2
    assert sorted(stored_ids(base)) == ["before-start", "new", "while-running"]


def run_serve(entry: list[str], *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MEMABRA_API_TOKEN", None)
    if token:
        env["MEMABRA_API_TOKEN"] = token
    return subprocess.run([sys.executable, *entry, "serve", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("entry", [["-m", "memabra"],
                                   ["-c", "import sys; from memabra.cli import command; sys.exit(command())"]])
def test_the_server_refuses_to_start_for_writes_without_a_token(tmp_path, entry):
    result = run_serve(entry, "--base-dir", str(tmp_path / "store"), "--host", "127.0.0.1", "--port", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "MEMABRA_API_TOKEN" in result.stderr and "--read-only" in result.stderr


def test_python_dash_m_memabra_serve_runs_until_interrupted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMABRA_API_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "memabra", "serve", "--base-dir", str(tmp_path / "store"),
                                "--host", "127.0.0.1", "--port", "0"], stderr=subprocess.PIPE, text=True, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(process.stderr.readline()), daemon=True)
        reader.start()
        reader.join(timeout=WAIT_S)
        assert ready and ready[0].startswith("memabra serve: http://127.0.0.1:"), ready
        url = ready[0].split()[2]
        with client(url) as http:
            for _ in range(200):  # the line is printed before uvicorn's startup finishes
                try:
                    posted = http.post("/v1/trajectories", content=jsonl([trajectory("cli-1")]), headers=AUTH)
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert posted.json()["stored_count"] == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT_S)
    assert stored_ids(tmp_path / "store") == ["cli-1"], "the journal was sealed into a segment on shutdown"
    assert [path.suffix for path in (tmp_path / "store" / "trajectories").iterdir()] == [".json"]


def test_a_missing_server_extra_is_one_line_naming_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert serve_main(["serve", "--base-dir", str(tmp_path), "--read-only"]) == 2
    assert capsys.readouterr().err == "error: memabra serve needs the server extra: pip install 'memabra[server]'\n"
