"""ONNX export, its parity check, and prediction through the ONNX and int8 backends, on the tiny BERT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from bertkit.errors import ModelError, UsageError  # noqa: E402
from bertkit.export.parity import BUILTIN_TEXTS, Tolerances, judge, raise_on_failure  # noqa: E402
from bertkit.export.run import export_model  # noqa: E402
from bertkit.export.runtime import EXPORT_INFO, INT8_FILE, MODEL_FILE  # noqa: E402 - after the skips
from bertkit.tasks.classification.backends import OnnxClassifier, load_backend_classifier  # noqa: E402
from bertkit.tasks.classification.parity import sample_accuracy, sample_texts  # noqa: E402

TEXTS = [
    "the film was good .",
    "i hated the food , it was very cold !",
    "ok",
    "a really wonderful story , i would recommend it . " * 6,
    "what a dull show",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a busy machine is not slowed further."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-class classifier (new, seeded head) with bertkit's input settings in its config."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_model_dir),
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    model.config.bertkit = {"max_length": 64, "text_pair": False, "threshold": 0.5, "separator": None}
    model.save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def run_dir(classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete (minimal) run directory holding the tiny classifier."""
    run = tmp_path_factory.mktemp("runs") / "tiny-20250101-000000"
    shutil.copytree(classifier_dir, run / "model")
    (run / "run.json").write_text(json.dumps({"status": "complete"}), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def exported(run_dir: Path):
    """The run exported to RUN/export/onnx, fp32 and int8 (one real export for the module)."""
    return export_model(run_dir, quantize="int8")


@pytest.fixture(scope="module")
def standard_export(classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The classifier exported with --no-optimize: standard ONNX operators only."""
    return export_model(classifier_dir, output=tmp_path_factory.mktemp("standard") / "onnx", optimize=False)


def _labels(classifier) -> list[str]:
    from bertkit.tasks.classification.predict import predict_texts

    return [r["predicted_label"] for r in predict_texts(classifier, TEXTS)]


# --------------------------------------------------------------------------- export


def test_export_writes_a_self_contained_folder_with_its_parity_report(exported, run_dir):
    folder = run_dir / "export" / "onnx"
    assert exported.folder == folder
    for name in (MODEL_FILE, INT8_FILE, "config.json", "tokenizer.json", EXPORT_INFO):
        assert (folder / name).is_file(), name
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temporary folders left"

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["bertkit"]["max_length"] == 64

    info = json.loads((folder / EXPORT_INFO).read_text(encoding="utf-8"))
    assert info["kind"] == "classifier"
    assert info["quantized"] == "int8"
    assert info["opset"] == 18
    assert info["run"] == str(run_dir.resolve())
    parity = info["parity"]
    assert parity["sample"] == "built-in sentences"
    assert parity["fp32"]["texts"] == len(BUILTIN_TEXTS)
    assert parity["fp32"]["passed"] and parity["int8"]["passed"]
    assert parity["fp32"]["max_abs_diff"] <= 1e-5
    assert parity["fp32"]["agreement"] == 1.0
    assert parity["int8"]["agreement"] >= 0.99
    assert parity["int8"]["tolerance"] == {"min_agreement": 0.99}
    assert info["optimized"]["onnxruntime_operators"]["Attention"] == 2  # one per layer


def _operators(path: Path) -> set[tuple[str, str]]:
    return {(node.domain, node.op_type) for node in onnx.load(str(path)).graph.node}


def test_the_fp32_graph_is_fused_for_onnx_runtime(exported, standard_export):
    fused = _operators(exported.folder / MODEL_FILE)
    standard = _operators(standard_export.folder / MODEL_FILE)
    assert {("com.microsoft", op) for op in ("Attention", "SkipLayerNormalization", "BiasGelu")} <= fused
    assert ("", "Softmax") in standard and ("", "Softmax") not in fused  # inside the Attention kernel
    assert {domain for domain, _ in standard} == {""}, "--no-optimize must keep standard operators"
    info = json.loads((standard_export.folder / EXPORT_INFO).read_text(encoding="utf-8"))
    assert info["optimized"] is None
    assert info["parity"]["fp32"]["max_abs_diff"] <= 1e-5


def test_a_failed_fusion_keeps_the_standard_graph(standard_export, monkeypatch, tmp_path):
    from bertkit.export.onnx import optimize_graph

    graph = tmp_path / MODEL_FILE
    shutil.copy2(standard_export.folder / MODEL_FILE, graph)
    before = graph.read_bytes()

    def fail(model):
        raise ValueError("pattern broke")

    monkeypatch.setattr("onnxscript.rewriter.ort_fusions.optimize_for_ort", fail)
    assert optimize_graph(graph) == {"skipped": "onnxscript's fusions failed: pattern broke"}
    assert graph.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [MODEL_FILE]


def test_the_graph_has_dynamic_batch_and_sequence_axes(exported):
    graph = onnx.load(str(exported.folder / MODEL_FILE)).graph
    names = [i.name for i in graph.input]
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        assert all(d.dim_param and not d.dim_value for d in dims), value


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize("quantize", [None, "int8"], ids=["fp32", "int8"])
def test_onnx_backend_predicts_what_torch_predicts(exported, run_dir, quantize):
    from bertkit.tasks.classification.predict import predict_texts

    torch_classifier = load_backend_classifier(run_dir, device="cpu")
    onnx_classifier = load_backend_classifier(run_dir, backend="onnx", quantize=quantize)
    assert isinstance(onnx_classifier, OnnxClassifier)
    assert onnx_classifier.labels == torch_classifier.labels
    assert onnx_classifier.max_length == 64
    # Batch sizes 1 and 2 and texts of many lengths: the axes really are dynamic.
    for batch_size in (1, 2, 64):
        ours = predict_texts(onnx_classifier, TEXTS, batch_size=batch_size)
        theirs = predict_texts(torch_classifier, TEXTS, batch_size=batch_size)
        assert [r["predicted_label"] for r in ours] == [r["predicted_label"] for r in theirs]
        assert list(ours[0]) == list(theirs[0])
    reference = torch_classifier.logits(TEXTS)
    logits = onnx_classifier.logits(TEXTS)
    assert np.abs(reference - logits).max() < (1e-5 if quantize is None else 0.05)


def test_torch_int8_quantizes_linear_layers_and_keeps_labels(classifier_dir):
    import torch

    from bertkit.export.runtime import describe_backend

    classifier = load_backend_classifier(classifier_dir, quantize="int8")
    assert describe_backend(classifier) == "torch int8 on cpu"
    assert _labels(classifier) == _labels(load_backend_classifier(classifier_dir, device="cpu"))
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    linear = [m for m in classifier.model.modules() if isinstance(m, DynamicInt8Linear)]
    assert len(linear) == 2 * 6 + 2  # per layer Q, K, V, out, up, down; the pooler; the head
    assert not any(isinstance(m, torch.nn.Linear) for m in classifier.model.modules())
    assert {m.weight().qscheme() for m in linear} == {torch.per_channel_affine}  # a scale per channel


def test_int8_on_a_gpu_is_refused_before_loading(classifier_dir):
    with pytest.raises(UsageError, match="CPU only"):
        load_backend_classifier(classifier_dir, quantize="int8", device="cuda")


def test_onnx_backend_needs_an_export(classifier_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(classifier_dir, run / "model")
    (run / "run.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelError, match="has no ONNX export") as caught:
        load_backend_classifier(run, backend="onnx")
    assert "bertkit export --model" in caught.value.hint
    with pytest.raises(ModelError, match="holds no ONNX export"):
        load_backend_classifier(classifier_dir, backend="onnx")


# --------------------------------------------------------------------------- CLI


def test_cli_predict_backend_onnx_same_labels_and_throughput(exported, run_dir, run_cli, tmp_path):
    torch_result = run_cli("predict", "--model", run_dir, "--json", *TEXTS)
    onnx_result = run_cli("predict", "--model", run_dir, "--backend", "onnx", "--json", *TEXTS)
    assert torch_result.exit_code == 0, torch_result.output
    assert onnx_result.exit_code == 0, onnx_result.output
    ours = json.loads(onnx_result.stdout)
    theirs = json.loads(torch_result.stdout)
    assert [r["predicted_label"] for r in ours] == [r["predicted_label"] for r in theirs]

    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS * 10) + "\n", encoding="utf-8")
    outputs = {}
    for backend in ("torch", "onnx"):
        target = tmp_path / f"{backend}.csv"
        options = ["--backend", backend, "--quantize", "int8", "-i", source, "-o", target]
        result = run_cli("predict", "--model", run_dir, *options)
        assert result.exit_code == 0, result.output
        assert "rows/s" in result.stderr and f"{backend} int8 on cpu" in result.stderr
        outputs[backend] = target.read_text(encoding="utf-8").splitlines()
    assert outputs["torch"][0] == outputs["onnx"][0]  # the same columns
    assert len(outputs["onnx"]) == 51


def test_cli_torch_backend_on_an_export_folder_says_use_onnx(exported, run_cli):
    result = run_cli("predict", "--model", exported.folder, "some text")
    assert result.exit_code == 2
    assert "--backend onnx" in result.stderr


def test_cli_export_model_folder(standard_export, classifier_dir, run_cli, tmp_path, monkeypatch):
    _reuse_graph(monkeypatch, standard_export)  # the exporter itself is tested above; this is the command
    target = tmp_path / "exported"
    result = run_cli("export", "--model", classifier_dir, "--output", target, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["folder"] == str(target)
    assert report["files"] == {"fp32": MODEL_FILE}
    assert report["parity"]["fp32"]["passed"]
    assert "int8" not in report["parity"]

    again = run_cli("export", "--model", classifier_dir, "--output", target)
    assert again.exit_code == 2
    assert "already holds an export" in again.stderr and "--overwrite" in again.stderr

    missing = run_cli("predict", "--model", target, "--backend", "onnx", "--quantize", "int8", "hi")
    assert missing.exit_code == 1
    assert "no int8 graph" in missing.stderr

    replaced = run_cli("export", "--model", classifier_dir, "-o", target, "--quantize", "int8", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert (target / INT8_FILE).is_file()
    assert "same labels" in replaced.stdout and "passed" in replaced.stdout
    assert "limits: fp32 max |Δ| ≤ 0.001; int8 same labels ≥ 99%\n" in replaced.stderr  # no labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"], "temporary folders left"


def test_cli_export_a_model_folder_needs_an_output(classifier_dir, run_cli):
    result = run_cli("export", "--model", classifier_dir)
    assert result.exit_code == 2
    assert "--output" in result.stderr


def test_masked_lm_export_and_fill_mask_on_onnx(tiny_model_dir, run_cli, tmp_path):
    target = tmp_path / "mlm-onnx"
    result = export_model(tiny_model_dir, output=target)
    assert result.kind == "masked-lm"
    (check,) = result.parity
    assert check.passed and check.agreement == 1.0 and check.agreement_of == "top-1 tokens"
    assert check.compared > check.texts  # tokens, not texts

    text = "the [MASK] was good ."
    ours = run_cli("predict", "--model", target, "--backend", "onnx", "--json", text)
    theirs = run_cli("predict", "--model", tiny_model_dir, "--json", text)
    assert ours.exit_code == 0, ours.output
    tokens = [[c["token"] for c in json.loads(r.stdout)[0]["masks"][0]] for r in (ours, theirs)]
    assert tokens[0] == tokens[1]
    from bertkit.export.runtime import describe_backend
    from bertkit.tasks.mlm.backends import load_backend_masked_lm

    assert describe_backend(load_backend_masked_lm(target, backend="onnx")) == "onnx on cpu"


# --------------------------------------------------------------------------- failures


def _reuse_graph(monkeypatch, standard_export) -> None:
    """Skip the (slow) exporter: copy the module's already exported standard graph instead."""

    def copy_graph(model, example, path, max_positions, external=False, outputs=None):
        shutil.copy2(standard_export.folder / MODEL_FILE, path)

    monkeypatch.setattr("bertkit.export.onnx.export_graph", copy_graph)


def test_a_graph_that_computes_something_else_fails_and_leaves_nothing(
    standard_export, classifier_dir, monkeypatch, tmp_path
):
    _reuse_graph(monkeypatch, standard_export)
    real_forward = OnnxClassifier.forward
    monkeypatch.setattr(OnnxClassifier, "forward", lambda self, batch: real_forward(self, batch) + 0.5)
    target = tmp_path / "out" / "onnx"
    with pytest.raises(ModelError) as caught:
        export_model(classifier_dir, output=target)
    message = str(caught.value)
    assert "does not match the model" in message
    assert "max |logit difference| 5.00e-01" in message and "allowed at most 0.001" in message
    assert not target.exists()
    assert not list((tmp_path / "out").iterdir()), "temporary folder left behind"


def test_an_int8_graph_below_the_agreement_limit_fails(
    standard_export, classifier_dir, monkeypatch, tmp_path
):
    _reuse_graph(monkeypatch, standard_export)
    agreement = "bertkit.tasks.classification.export.prediction_agreement"
    monkeypatch.setattr(agreement, lambda *args: (0.9, "labels"))
    target = tmp_path / "onnx"
    with pytest.raises(ModelError) as caught:
        export_model(classifier_dir, output=target, quantize="int8")
    assert "int8 graph changes too many predictions" in str(caught.value)
    assert "labels agree on 90.0% of 32 texts; required at least 99%" in str(caught.value)
    assert "--min-agreement" in caught.value.hint
    assert not target.exists()


def test_bad_options_fail_before_any_work(classifier_dir, tmp_path):
    with pytest.raises(UsageError, match="--format"):
        export_model(classifier_dir, output=tmp_path / "x", format="tflite")
    with pytest.raises(UsageError, match="--quantize"):
        export_model(classifier_dir, output=tmp_path / "x", quantize="int4")
    with pytest.raises(UsageError, match="inside the model folder"):
        export_model(classifier_dir, output=classifier_dir / "onnx")


# --------------------------------------------------------------------------- sample texts


def test_sample_texts_from_a_file_else_built_in(tiny_sentiment_files):
    sample = sample_texts(None, tiny_sentiment_files / "validation.csv", False, 256)
    assert len(sample.texts) == 12 and sample.pairs is None and "validation.csv" in sample.where
    assert sample.targets is None  # no label names given: nothing to encode against

    sample = sample_texts(None, None, True, 5)
    assert sample.texts == list(BUILTIN_TEXTS[:5])
    assert sample.pairs == sample.texts[1:] + sample.texts[:1]
    assert sample.where == "built-in sentences in pairs"
    assert sample.targets is None


def test_sample_labels_are_encoded_as_the_models_ids(tiny_sentiment_files, tmp_path):
    from bertkit.tasks.classification.labels import LabelSpec

    spec = LabelSpec("single", ("negative", "positive"))
    sample = sample_texts(None, tiny_sentiment_files / "validation.csv", False, 4, spec)
    assert sample.targets == [1, 0, 1, 0]  # the file alternates positive, negative

    unknown = LabelSpec("single", ("bad", "good"))
    assert sample_texts(None, tiny_sentiment_files / "validation.csv", False, 4, unknown).targets is None
    regression = LabelSpec("regression")
    assert sample_texts(None, tiny_sentiment_files / "validation.csv", False, 4, regression).targets is None
    unlabelled = tmp_path / "texts.csv"
    unlabelled.write_text("text\nthe film was good .\n", encoding="utf-8")
    assert sample_texts(None, unlabelled, False, 4, spec).targets is None


def test_sample_accuracy_single_and_multi_label():
    logits = np.array([[2.0, -1.0], [0.5, 1.5], [-1.0, 3.0]], dtype=np.float32)
    assert sample_accuracy("single", 0.5, logits, [0, 1, 0]) == pytest.approx(2 / 3)
    # multi: the whole set must match; logits >= 0 are "on" at threshold 0.5
    assert sample_accuracy("multi", 0.5, logits, [[1, 0], [1, 1], [0, 1]]) == pytest.approx(1.0)
    assert sample_accuracy("multi", 0.5, logits, [[1, 1], [1, 1], [0, 1]]) == pytest.approx(2 / 3)


def test_int8_passes_on_labelled_texts_when_flips_cost_no_accuracy():
    limits = Tolerances()
    # 98% agreement: below the 99% floor, but accuracy is unchanged on the labelled sample.
    same_accuracy = judge("int8", 100, 100, 0.3, 0.98, "labels", limits, (100, 0.91, 0.91))
    assert same_accuracy.passed
    assert same_accuracy.tolerance == {"min_agreement": 0.99, "max_accuracy_drop": 0.01}
    assert judge("int8", 100, 100, 0.3, 0.98, "labels", limits, (100, 0.90, 0.91)).passed  # one point
    assert not judge("int8", 100, 100, 0.3, 0.98, "labels", limits).passed  # no labels: agreement only

    worse = judge("int8", 100, 100, 0.3, 0.97, "labels", limits, (100, 0.89, 0.91))
    assert not worse.passed
    with pytest.raises(ModelError) as caught:
        raise_on_failure([worse])
    message = str(caught.value)
    assert "labels agree on 97.0% of 100 texts" in message
    assert "accuracy falls from 91.0% to 89.0% on 100 labelled texts" in message
    assert "or a drop in accuracy of at most 1.0%" in message
    assert "--max-accuracy-drop" in caught.value.hint


def test_export_reports_accuracy_on_labelled_sample_texts(
    standard_export, classifier_dir, tiny_sentiment_files, monkeypatch, tmp_path, run_cli
):
    _reuse_graph(monkeypatch, standard_export)
    agreement = "bertkit.tasks.classification.export.prediction_agreement"
    monkeypatch.setattr(agreement, lambda *args: (0.5, "labels"))
    target = tmp_path / "onnx"
    data = tiny_sentiment_files / "validation.csv"
    result = run_cli("export", "--model", classifier_dir, "-o", target, "--quantize", "int8", "--data", data)
    assert result.exit_code == 0, result.output
    parity = json.loads((target / EXPORT_INFO).read_text(encoding="utf-8"))["parity"]
    fp32, int8 = parity["fp32"], parity["int8"]
    assert fp32["labelled"] == int8["labelled"] == 12
    assert fp32["accuracy"] == pytest.approx(fp32["reference_accuracy"])  # fp32 keeps every prediction
    # Agreement is (made) far below 99%: the int8 graph passes on its accuracy alone.
    assert int8["passed"] and int8["reference_accuracy"] - int8["accuracy"] <= 0.01 + 1e-9
    assert int8["tolerance"] == {"min_agreement": 0.99, "max_accuracy_drop": 0.01}
    assert "accuracy" in result.stdout and "50.00%" in result.stdout
    assert "int8 same labels ≥ 99% or accuracy down ≤ 1 pt" in result.stderr
    assert "the original model's accuracy on the 12 labelled texts" in result.stderr
