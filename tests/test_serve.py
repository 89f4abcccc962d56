"""`bertkit serve` over real HTTP: each server runs in a subprocess on a free loopback port.

Every task's server answers as `bertkit predict` (embeddings: `bertkit embed`) does;
64 concurrent clients each get their own answer; bad requests get their documented
JSON errors and the server stays up; a full queue answers 503 with Retry-After;
SIGTERM under load answers every request the server accepted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import yaml

pytest.importorskip("fastapi")

TEXTS = ["the film was good .", "the food was awful , we will never come back .", "", "a great show"]
STARTUP_TIMEOUT = 120
STOPPED = 0  # SIGTERM: the requests in flight are answered, then the command ends normally


_STARTED: list[Server] = []


@pytest.fixture(autouse=True, scope="module")
def no_server_left_behind():
    """Kill any server a failed test left running (a passing test has stopped its own)."""
    yield
    for server in _STARTED:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


class Server:
    """`bertkit serve` in a subprocess, on a free port (`--port 0`), ready once /health says so."""

    def __init__(self, *args: str | os.PathLike[str], env: dict[str, str] | None = None, log: Path) -> None:
        self.log_path = log
        self.log = log.open("w")
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "BERTKIT_DEBUG": "", **(env or {})}
        command = [sys.executable, "-m", "bertkit", "serve", "--port", "0", *map(str, args)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=environment)
        _STARTED.append(self)
        self.url = f"http://127.0.0.1:{self._port()}"
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def _port(self) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            found = re.search(r"on http://127\.0\.0\.1:(\d+)", self.output())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no port announced:\n{self.output()}")

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.output()}")
            try:
                if self.client.get("/health").status_code == 200:
                    return self
            except httpx.TransportError:  # several workers: the address is bound before it listens
                pass
            time.sleep(0.1)
        raise AssertionError(f"never ready:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def predict(self, body: dict, **kwargs) -> httpx.Response:
        return self.client.post("/v1/predict", json=body, **kwargs)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.client.close()
        self.log.close()
        return code


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, tiny_model_dir, tiny_sentiment_files) -> Path:
    from bertkit.recipe import load_recipe
    from bertkit.training.run import train_recipe

    folder = tmp_path_factory.mktemp("serve-classifier")
    recipe = {
        "task": "classification",
        "model": {"name": str(tiny_model_dir)},
        "data": {
            "train": str(tiny_sentiment_files / "train.csv"),
            "validation": str(tiny_sentiment_files / "validation.csv"),
        },
        "train": {"max_steps": 4, "batch_size": 8, "learning_rate": 1.0e-3, "seed": 7},
        "output": {"root": str(folder / "runs")},
    }
    path = folder / "sentiment.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BERTKIT_CACHE", str(folder / "cache"))
        return train_recipe(load_recipe(path)).run.path


@pytest.fixture(scope="module")
def served(classifier_run, tmp_path_factory):
    server = Server("--model", classifier_run, log=tmp_path_factory.mktemp("serve-log") / "server.log")
    yield server.wait_ready()
    assert server.stop() == STOPPED, server.output()


def predicted(run_cli, model: Path, *args: str) -> list[dict]:
    """What `bertkit predict --json` prints for the same inputs."""
    result = run_cli("predict", "--model", model, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_same_classification(ours: list[dict], theirs: list[dict]) -> None:
    assert [r["text"] for r in ours] == [r["text"] for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a["predicted_label"] == b["predicted_label"]
        assert a.keys() == b.keys()
        if b["probabilities"] is None:
            assert a["probabilities"] is None
        else:  # the same model on batches of another make-up: float rounding apart
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-6)


# --------------------------------------------------------------------------- classification


def test_a_classifier_answers_as_bertkit_predict_does(served, run_cli, classifier_run):
    response = served.predict({"texts": TEXTS})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert_same_classification(response.json()["predictions"], predicted(run_cli, classifier_run, *TEXTS))
    ranked = served.predict({"texts": TEXTS[:2], "top_k": 2}).json()["predictions"]
    theirs = predicted(run_cli, classifier_run, "--top-k", "2", *TEXTS[:2])
    assert [[c["label"] for c in r["top_k"]] for r in ranked] == [
        [c["label"] for c in r["top_k"]] for r in theirs
    ]


def test_model_health_docs_and_metrics_describe_the_server(served, classifier_run):
    assert served.client.get("/health").json() == {"status": "ready"}
    info = served.client.get("/v1/model").json()
    assert info["task"] == "classification" and info["status"] == "ready"
    assert info["labels"] == ["negative", "positive"] and info["problem"] == "single"
    assert info["backend"] == "torch on cpu" and info["max_length"] == 128
    assert info["model"] == str(classifier_run)
    from bertkit import __version__

    assert info["version"] == __version__
    assert served.client.get("/docs").status_code == 200
    schema = served.client.get("/openapi.json").json()
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"] == {"texts": ["what a wonderful film", "the soup was cold"]}


def test_64_concurrent_clients_each_get_their_own_answer_in_shared_batches(served, run_cli, classifier_run):
    from prometheus_client.parser import text_string_to_metric_families

    words = ["good", "bad", "great", "awful", "dull", "lovely", "rude", "fun"]
    texts = [f"the {words[i % 8]} film was {words[(i // 8) % 8]} ." for i in range(64)]
    expected = {r["text"]: r for r in predicted(run_cli, classifier_run, *texts)}
    before = _metric(served, "bertkit_batch_units_count")
    barrier = threading.Barrier(64)

    def client(index: int) -> list[dict]:
        with httpx.Client(base_url=served.url, timeout=60) as own:
            barrier.wait()
            answers = []
            for repeat in range(3):
                text = texts[(index + repeat) % 64]
                response = own.post("/v1/predict", json={"texts": [text]})
                assert response.status_code == 200, response.text
                answers.append((text, response.json()["predictions"][0]))
            return answers

    with ThreadPoolExecutor(64) as pool:
        results = [answer for answers in pool.map(client, range(64)) for answer in answers]
    assert len(results) == 192
    for text, answer in results:
        assert answer["text"] == text
        assert_same_classification([answer], [expected[text]])
    batches = _metric(served, "bertkit_batch_units_count") - before
    assert batches < 192  # requests shared forward passes
    families = {f.name: f for f in text_string_to_metric_families(served.client.get("/metrics").text)}
    assert {
        "bertkit_requests",
        "bertkit_request_seconds",
        "bertkit_batch_units",
        "bertkit_queue_units",
    } <= set(families)


def _metric(server: Server, name: str, labels: dict[str, str] | None = None) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(server.client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and (labels is None or labels.items() <= sample.labels.items()):
                return sample.value
    return 0.0


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        (b'{"texts": ["a", ', 400, "invalid_json", "not valid JSON"),
        (b"[1, 2]", 422, "invalid_request", "must be a JSON object"),
        (b'{"text": ["a"]}', 422, "invalid_request", "texts: Field required"),
        (b'{"texts": "a film"}', 422, "invalid_request", "texts: Input should be a valid list"),
        (b'{"texts": ["a"], "top_k": 0}', 422, "invalid_request", "top_k: Input should be greater than"),
        (b'{"texts": ["a"], "threshold": 0.3}', 422, "invalid_request", "applies to multi-label models"),
        (b'{"texts": ["a"], "pairs": ["b"]}', 422, "invalid_request", "trained on single texts"),
        (json.dumps({"texts": ["a"] * 257}).encode(), 413, "too_many_texts", "at most 256"),
        (json.dumps({"texts": ["a" * 20_001]}).encode(), 413, "text_too_long", "at most 20,000"),
    ],
)
def test_bad_requests_get_a_json_error_and_the_server_stays_up(served, body, status, code, words):
    response = served.client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert served.predict({"texts": ["the film was good ."]}).status_code == 200


def test_an_oversized_body_is_refused_before_it_is_read(served):
    body = b'{"texts": ["' + b"a" * 21_000_000 + b'"]}'
    response = served.client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"texts": ["'
        for _ in range(25):
            yield b"a" * 1_000_000
        yield b'"]}'

    response = served.client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert served.client.get("/health").status_code == 200


def test_other_paths_and_methods_are_json_errors(served):
    assert served.client.get("/nothing").json()["error"]["code"] == "not_found"
    response = served.client.get("/v1/predict")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


# --------------------------------------------------------------------------- limits and failure


def test_a_full_queue_answers_503_with_retry_after_and_every_accepted_request_is_right(
    classifier_run, tmp_path, run_cli
):
    texts = [
        f"the film was {word} ." for word in ("good", "bad", "great", "awful", "dull", "fun", "rude", "nice")
    ]
    expected = {r["text"]: r for r in predicted(run_cli, classifier_run, *texts)}
    server = Server(
        "--model", classifier_run, "--queue-size", "8", "--max-texts", "8", "--max-batch", "1",
        log=tmp_path / "server.log",
    ).wait_ready()  # fmt: skip
    barrier = threading.Barrier(32)

    def client(index: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as own:
            barrier.wait()
            return own.post("/v1/predict", json={"texts": texts})

    try:
        with ThreadPoolExecutor(32) as pool:
            responses = list(pool.map(client, range(32)))
        statuses = sorted({r.status_code for r in responses})
        assert statuses == [200, 503]
        for response in responses:
            if response.status_code == 503:
                assert response.json()["error"]["code"] == "queue_full"
                assert int(response.headers["retry-after"]) >= 1
            else:
                for answer in response.json()["predictions"]:
                    assert_same_classification([answer], [expected[answer["text"]]])
        assert server.client.get("/health").status_code == 200
        assert server.predict({"texts": texts[:1]}).status_code == 200
        refused = _metric(server, "bertkit_requests_total", {"status": "503"})
        assert refused == sum(r.status_code == 503 for r in responses)
    finally:
        assert server.stop() == STOPPED


def test_a_request_over_the_timeout_gets_504_and_health_answers_while_the_model_runs(
    classifier_run, tmp_path
):
    # One text a forward pass: a request of 256 long texts keeps the model busy far past 0.1 s.
    server = Server(
        "--model", classifier_run, "--timeout", "0.1", "--max-batch", "1", log=tmp_path / "server.log"
    ).wait_ready()  # fmt: skip
    long_text = " ".join(["the film was good , the food was awful"] * 12)
    slow: dict[str, object] = {}

    def send() -> None:
        slow["response"] = server.predict({"texts": [long_text] * 256})
        slow["done"] = time.monotonic()

    try:
        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.05)
        health = server.client.get("/health")
        answered = time.monotonic()
        sender.join(60)
        assert health.status_code == 200 and answered < slow["done"]  # the event loop was free
        response = slow["response"]
        assert response.status_code == 504, response.text
        assert response.json()["error"] == {
            "code": "timeout",
            "message": "no answer within 0.1 s (--timeout)",
        }
        assert server.predict({"texts": ["the film was good ."]}).status_code == 200
    finally:
        assert server.stop() == STOPPED


def test_multi_label_and_regression_models_answer_as_bertkit_predict_does(tiny_model_dir, tmp_path, run_cli):
    import torch
    from transformers import AutoModelForSequenceClassification

    from bertkit.models import load_tokenizer

    names = ["food", "service", "price"]
    multi = {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
    folders = {}
    for problem, settings in {
        "multi": {"num_labels": 3, "problem_type": "multi_label_classification", **multi},
        "regression": {"num_labels": 1, "problem_type": "regression"},
    }.items():
        torch.manual_seed(5)
        model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), **settings)
        folders[problem] = tmp_path / problem
        model.save_pretrained(folders[problem])
        load_tokenizer(str(tiny_model_dir)).save_pretrained(folders[problem])
    texts = ["the food was good .", "the service was slow and rude ."]
    server = Server("--model", folders["multi"], log=tmp_path / "multi.log").wait_ready()
    try:
        ours = server.predict({"texts": texts, "threshold": 0.45}).json()["predictions"]
        wrong = server.predict({"texts": texts, "top_k": 2})
    finally:
        assert server.stop() == STOPPED
    theirs = predicted(run_cli, folders["multi"], "--threshold", "0.45", *texts)
    assert [r["predicted_labels"] for r in ours] == [r["predicted_labels"] for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-6)
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "top_k"
    server = Server("--model", folders["regression"], log=tmp_path / "regression.log").wait_ready()
    try:
        ours = server.predict({"texts": texts}).json()["predictions"]
    finally:
        assert server.stop() == STOPPED
    theirs = predicted(run_cli, folders["regression"], *texts)
    assert [r["predicted_value"] for r in ours] == pytest.approx(
        [r["predicted_value"] for r in theirs], abs=1e-5
    )


def test_the_onnx_int8_backend_serves_as_bertkit_predict_runs_it(classifier_run, tmp_path, run_cli):
    pytest.importorskip("onnxruntime")
    import shutil

    from bertkit.export.run import export_model

    run = tmp_path / classifier_run.name
    shutil.copytree(classifier_run, run)
    export_model(run, quantize="int8")
    server = Server(
        "--model", run, "--backend", "onnx", "--quantize", "int8", log=tmp_path / "s.log"
    ).wait_ready()
    try:
        ours = server.predict({"texts": TEXTS}).json()["predictions"]
        assert server.client.get("/v1/model").json()["backend"] == "onnx int8 on cpu"
    finally:
        assert server.stop() == STOPPED
    theirs = predicted(run_cli, run, "--backend", "onnx", "--quantize", "int8", *TEXTS)
    assert_same_classification(ours, theirs)


def test_sigterm_under_load_answers_every_request_it_accepted(classifier_run, tmp_path):
    server = Server("--model", classifier_run, log=tmp_path / "server.log").wait_ready()
    answered, refused, lost = [], [], []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as own:
            while not stop.is_set():
                try:
                    response = own.post("/v1/predict", json={"texts": ["the film was good ."]})
                except httpx.TransportError:  # the server no longer takes connections
                    lost.append(1)
                    return
                (answered if response.status_code == 200 else refused).append(response)

    clients = [threading.Thread(target=client) for _ in range(16)]
    for thread in clients:
        thread.start()
    time.sleep(1.5)
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(60)
    stop.set()
    for thread in clients:
        thread.join(60)
    log = server.output()
    server.stop()
    assert code == STOPPED, log
    assert len(answered) > 16
    assert all(r.json()["predictions"][0]["predicted_label"] for r in answered)
    assert all(r.status_code == 503 and r.json()["error"]["code"] == "shutting_down" for r in refused)
    found = re.search(r"stopped: (\d+) prediction requests received, (\d+) answered", log)
    assert found, log
    received, replied = map(int, found.groups())
    # Every request the server took was answered, and every answer reached its client.
    assert received == replied == len(answered) + len(refused)


def test_an_api_key_is_required_where_configured_and_never_logged(classifier_run, tmp_path):
    key = "s3cret-key-for-tests"
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n", encoding="utf-8")
    server = Server("--model", classifier_run, "--api-key-file", key_file, log=tmp_path / "server.log")
    try:
        server.wait_ready()  # /health needs no key
        body = {"texts": ["the film was good ."]}
        assert server.predict(body).status_code == 401
        wrong = server.predict(body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorised"
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert server.predict(body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert server.predict(body, headers={"X-API-Key": key}).status_code == 200
        assert server.client.get("/metrics").status_code == 401
        assert server.client.get("/metrics", headers={"X-API-Key": key}).status_code == 200
    finally:
        assert server.stop() == STOPPED
    assert key not in server.output()
    assert "API key required" in server.output()


def test_the_api_key_can_come_from_the_environment(classifier_run, tmp_path):
    server = Server("--model", classifier_run, env={"BERTKIT_API_KEY": "from-env"}, log=tmp_path / "s.log")
    try:
        server.wait_ready()
        assert server.predict({"texts": ["a"]}).status_code == 401
        assert server.predict({"texts": ["a"]}, headers={"X-API-Key": "from-env"}).status_code == 200
    finally:
        assert server.stop() == STOPPED


def test_a_model_that_cannot_load_stops_the_server_with_one_line(classifier_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(classifier_run / "model", broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    server = Server("--model", broken, log=tmp_path / "server.log")
    code = server.process.wait(STARTUP_TIMEOUT)
    log = server.output()
    server.stop()
    assert code == 1, log
    assert "error:" in log and "Traceback" not in log


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--aggregation", "max"],
            "--aggregation: does not apply to `bertkit serve` on a classification model",
        ),
        (["--max-texts", "300", "--queue-size", "100"], "--max-texts 300: over --queue-size 100"),
        (["--api-key-file", "missing.txt"], "--api-key-file missing.txt: cannot read it"),
        (["--log-level", "loud"], "--log-level 'loud'"),
    ],
)
def test_options_that_cannot_work_are_refused_before_anything_loads(run_cli, classifier_run, args, words):
    result = run_cli("serve", "--model", classifier_run, "--port", "0", *args)
    assert result.exit_code != 0
    assert words in result.output


def test_a_port_in_use_is_one_line(run_cli, classifier_run):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--model", classifier_run, "--port", str(port))
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output


# --------------------------------------------------------------------------- the other tasks


@pytest.fixture(scope="module")
def head_models(tmp_path_factory, tiny_model_dir) -> SimpleNamespace:
    """The tiny BERT with seeded NER and question-answering heads, and as a sentence encoder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("serve-heads")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    labels = ["O", "B-DISH", "I-DISH", "B-WORK", "I-WORK"]
    torch.manual_seed(3)
    tagger = AutoModelForTokenClassification.from_pretrained(
        str(tiny_model_dir), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    tagger.save_pretrained(folder / "ner")
    tokenizer.save_pretrained(folder / "ner")
    torch.manual_seed(4)
    AutoModelForQuestionAnswering.from_pretrained(str(tiny_model_dir)).save_pretrained(folder / "qa")
    tokenizer.save_pretrained(folder / "qa")
    SentenceTransformer(str(tiny_model_dir), device="cpu").save(str(folder / "embedding"))
    return SimpleNamespace(
        ner=folder / "ner", qa=folder / "qa", embedding=folder / "embedding", mlm=tiny_model_dir
    )


def test_an_ner_model_answers_as_bertkit_predict_does(head_models, run_cli, tmp_path):
    texts = ["the pasta and the film were good", "", "we liked the book show and the soup"]
    server = Server("--model", head_models.ner, log=tmp_path / "server.log").wait_ready()
    try:
        ours = server.predict({"texts": texts}).json()["predictions"]
        assert server.client.get("/v1/model").json()["types"] == ["DISH", "WORK"]
    finally:
        assert server.stop() == STOPPED
    theirs = predicted(run_cli, head_models.ner, *texts)
    assert sum(len(r["entities"]) for r in theirs) > 0  # the seeded head tags something
    assert [r["text"] for r in ours] == texts
    for a, b in zip(ours, theirs, strict=True):
        assert [(e["type"], e["start"], e["end"], e["text"]) for e in a["entities"]] == [
            (e["type"], e["start"], e["end"], e["text"]) for e in b["entities"]
        ]
        assert [e["score"] for e in a["entities"]] == pytest.approx(
            [e["score"] for e in b["entities"]], abs=1e-5
        )


def test_a_question_answering_model_answers_as_bertkit_predict_does(head_models, run_cli, tmp_path):
    context = "the film was good . the food was awful , and the staff were rude . " * 6  # several windows
    questions = ["what was the film like ?", "who was rude ?"]
    server = Server("--model", head_models.qa, log=tmp_path / "server.log").wait_ready()
    try:
        body = {"inputs": [{"question": q, "context": context} for q in questions], "top_k": 2}
        ours = server.predict(body).json()["predictions"]
    finally:
        assert server.stop() == STOPPED
    theirs = predicted(run_cli, head_models.qa, "--context", context, "--top-k", "2", *questions)
    refused = run_cli("serve", "--model", head_models.qa, "--precision", "fp32", "--port", "0")
    assert (
        refused.exit_code == 2
        and "--precision: does not apply to `bertkit serve` on a qa model" in refused.output
    )
    assert [r["question"] for r in ours] == questions
    for a, b in zip(ours, theirs, strict=True):
        for mine, expected in zip(
            [a["answer"], *a["alternatives"]], [b["answer"], *b["alternatives"]], strict=True
        ):
            if expected is None:
                assert mine is None
            else:
                assert (mine["text"], mine["start"], mine["end"]) == (
                    expected["text"], expected["start"], expected["end"],
                )  # fmt: skip
                assert mine["score"] == pytest.approx(expected["score"], abs=1e-5)


def test_an_embedding_model_answers_as_bertkit_embed_does(head_models, run_cli, tmp_path):
    texts = ["the film was good", "a great show", "the food was awful"]
    server = Server("--model", head_models.embedding, log=tmp_path / "server.log").wait_ready()
    try:
        ours = server.predict({"texts": texts}).json()["predictions"]
        info = server.client.get("/v1/model").json()
    finally:
        assert server.stop() == STOPPED
    result = run_cli("embed", "--model", head_models.embedding, *texts)
    assert result.exit_code == 0, result.output
    theirs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in ours] == texts
    np.testing.assert_allclose(
        np.array([r["embedding"] for r in ours]), np.array([r["embedding"] for r in theirs]), atol=1e-5
    )
    assert info["task"] == "embedding" and info["dimension"] == 32 and info["backend"] == "torch on cpu"
    refused = run_cli("serve", "--model", head_models.embedding, "--quantize", "int8", "--port", "0")
    assert refused.exit_code == 2 and "--quantize: with --backend onnx" in refused.output


def test_a_masked_lm_fills_masks_as_bertkit_predict_does(head_models, run_cli, tmp_path):
    texts = ["the film was [MASK] .", "the [MASK] was awful ."]
    server = Server("--model", head_models.mlm, log=tmp_path / "server.log").wait_ready()
    try:
        ours = server.predict({"texts": texts, "top_k": 3}).json()["predictions"]
        missing = server.predict({"texts": ["no mask here"]})
    finally:
        assert server.stop() == STOPPED
    theirs = predicted(run_cli, head_models.mlm, "--top-k", "3", *texts)
    assert [[[c["token"] for c in m] for m in r["masks"]] for r in ours] == [
        [[c["token"] for c in m] for m in r["masks"]] for r in theirs
    ]
    assert missing.status_code == 422
    assert missing.json()["error"] == {
        "code": "invalid_request",
        "message": "no [MASK]: put [MASK] where a word is missing",
        "field": "texts.0",
    }


@pytest.mark.slow
def test_several_workers_share_the_port_and_the_metrics(classifier_run, tmp_path):
    server = Server("--model", classifier_run, "--workers", "2", log=tmp_path / "server.log").wait_ready()
    try:
        with ThreadPoolExecutor(8) as pool:
            responses = list(
                pool.map(lambda _: server.predict({"texts": ["the film was good ."]}), range(40))
            )
        assert all(r.status_code == 200 for r in responses)
        # /metrics adds up both processes' counts, whichever answers.
        assert _metric(server, "bertkit_requests_total", {"status": "200"}) == 40
    finally:
        assert server.stop() == STOPPED
