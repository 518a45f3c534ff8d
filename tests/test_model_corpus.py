"""The face models users bring load, match their source and give gradients: a small copy of
the corpus ``benchmarks/model_corpus.py`` builds at full size (the architectures at test size,
each exporter and opset users meet, quantised and float16 copies, a TensorFlow-style graph)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from faceqan.cli import EXIT_OK, EXIT_START_FAILED, main
from faceqan.models import create_model

from helpers import write_face_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "corpus"))
from architectures import ARCHITECTURES, build, input_size  # noqa: E402
from graphs import export, onnxruntime_embeddings, quantise_dynamic, quantise_static, tensorflow_style, to_float16  # noqa: E402

pytestmark = pytest.mark.slow

# The exports every architecture gets here (the benchmark adds dynamo at 11 and 13, and fixed batch at each opset).
EXPORTS = [("torchscript", 11, True), ("torchscript", 13, True), ("torchscript", 17, True), ("torchscript", 17, False), ("dynamo", 17, True)]
# Lowest cosine to onnxruntime's own int8 / float16 embeddings, measured on these test-size nets
# (worst seen: 0.9997 for static QDQ of IResNet-18): the tolerance the notice's agreement meets.
REDUCED_PRECISION_COSINE = 0.995


def _faces(size: int, count: int = 3) -> torch.Tensor:
    return torch.rand((count, 3, size, size), generator=torch.Generator().manual_seed(1)) * 2 - 1


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[tuple[str, Path, torch.nn.Module | None, str]]:
    """(architecture, file, source module or None, kind) for every graph of the small corpus."""
    folder = tmp_path_factory.mktemp("corpus")
    files = []
    for name in ARCHITECTURES:
        if name == "iresnet100":
            continue  # the same layout as iresnet50 at test size
        network = build(name, small=True)
        for exporter, opset, dynamic in EXPORTS:
            path = folder / f"{name}-{exporter}-{opset}-{'dynamic' if dynamic else 'batch1'}.onnx"
            export(network, input_size(name), path, exporter, opset, dynamic)
            files.append((name, path, network, "float"))
    for name in ("mobilefacenet-prelu", "iresnet50"):
        source = folder / f"{name}-torchscript-17-dynamic.onnx"
        for kind, make in (("int8 dynamic", quantise_dynamic), ("int8 QDQ", lambda s, p: quantise_static(s, p, 112)), ("float16", to_float16)):
            path = folder / f"{name}-{kind.replace(' ', '-')}.onnx"
            make(source, path)
            files.append((name, path, None, kind))
    tensorflow_style(folder / "tf-style.onnx")
    files.append(("tf-style", folder / "tf-style.onnx", None, "float"))
    return files


def test_every_graph_of_the_corpus_loads_matches_its_source_and_gives_gradients(corpus):
    problems = []
    for _name, path, source, kind in corpus:
        try:
            model = create_model(str(path))
        except Exception as exc:  # collect every failure, not the first only
            problems.append(f"{path.name}: {exc}")
            continue
        network = model.network
        size = model.spec.input_size
        x = _faces(size)
        raw = x * model.scale[0] + model.scale[1]
        with torch.no_grad():
            ours = network(raw)
        feed = raw.permute(0, 2, 3, 1) if network.channels_last else raw
        theirs = torch.from_numpy(onnxruntime_embeddings(path, feed.contiguous().numpy(), network.fixed_batch))
        tolerance = 1 - 1e-4 if kind == "float" else REDUCED_PRECISION_COSINE
        if _cosines(ours, theirs).min() < tolerance:
            problems.append(f"{path.name}: cosine to onnxruntime {_cosines(ours, theirs).min():.6f} < {tolerance}")
        if source is not None:
            with torch.no_grad():
                expected = source(raw)
            if _cosines(ours, expected).min() < 1 - 1e-4:
                problems.append(f"{path.name}: cosine to the torch module {_cosines(ours, expected).min():.6f}")
        x = x.requires_grad_(True)
        (gradient,) = torch.autograd.grad(model(x).sum(), x)
        if not torch.isfinite(gradient).all() or not (gradient != 0).any():
            problems.append(f"{path.name}: input gradient not finite and non-zero")
    assert not problems, "\n".join(problems)
    assert len(corpus) == 7 * len(EXPORTS) + 6 + 1


def test_a_fixed_batch_graph_scores_a_batch_one_face_at_a_time(corpus):
    path = next(c[1] for c in corpus if c[1].name == "mobilefacenet-relu6-torchscript-17-batch1.onnx")
    model = create_model(str(path))
    assert model.network.fixed_batch
    x = _faces(112, 4)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_quantised_graphs_say_once_how_they_run_and_how_well_that_agrees(corpus, capsys):
    path = next(c[1] for c in corpus if c[3] == "int8 dynamic")
    create_model(str(path))
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "quantises its activations (int8): it runs as its float equivalent" in line
    agreement = float(line.rsplit("cosine ", 1)[1].split()[0])
    assert REDUCED_PRECISION_COSINE <= agreement <= 1


def test_a_quantised_graph_that_does_not_agree_is_refused_naming_the_float_model(corpus, monkeypatch):
    from faceqan.models import custom

    monkeypatch.setattr(custom, "QUANTISED_AGREEMENT", 1.01)  # no agreement passes
    path = next(c[1] for c in corpus if c[3] == "int8 QDQ")
    with pytest.raises(custom.ModelLoadError, match="pass the float model the file was made from"):
        create_model(str(path))


@pytest.mark.parametrize(
    "file_name",
    ["mobilefacenet-relu6-torchscript-11-dynamic.onnx", "vit-tiny-dynamo-17-dynamic.onnx", "iresnet50-int8-dynamic.onnx", "tf-style.onnx"],
)
def test_faceqan_score_gives_a_row_for_graphs_users_export(corpus, tmp_path, file_name):
    path = next(c[1] for c in corpus if c[1].name == file_name)
    [face] = write_face_folder(tmp_path / "in", 1)
    out = tmp_path / "out.csv"
    assert main(["score", str(face), "-o", str(out), "--model", str(path), "--eps", "0.005", "--quiet"]) == EXIT_OK
    with open(out, newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["status"] == "ok" and 0 < float(row["quality"]) <= 1


def test_serfiq_runs_on_a_dense_layer_written_as_matmul_and_add(corpus):
    from faceqan.methods import create_method

    path = next(c[1] for c in corpus if c[1].name == "tf-style.onnx")
    model = create_model(str(path))
    assert len([m for m in model.modules() if isinstance(m, torch.nn.Linear)]) == 1
    result = create_method("serfiq", model, passes=8).compute(_faces(112, 2))
    assert torch.isfinite(result["quality"]).all() and result["quality"].std() > 0


@pytest.mark.parametrize("name", ["mobilefacenet-relu6", "vit-tiny", "inception-resnet-v1"])
def test_torch_jit_trace_files_of_the_corpus_load_and_match(tmp_path, name):
    network = build(name, small=True)
    size = input_size(name)
    path = tmp_path / f"{name}.pt"
    torch.jit.trace(network, _faces(size, 2)).save(str(path))
    model = create_model(str(path), input_size=size)
    x = _faces(size)
    with torch.no_grad():
        assert _cosines(model(x), network(x * model.scale[0] + model.scale[1])).min() > 1 - 1e-5


def _write_graph(path: Path, nodes, inputs, outputs, inits=()) -> None:
    import onnx
    from onnx import helper

    onnx.save(helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(inits)), opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _bad_graphs(folder: Path) -> dict[str, tuple[Path, str]]:
    """file -> (path, the words its one-line refusal must hold)."""
    from onnx import TensorProto, helper, numpy_helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 112, 112])
    flat = numpy_helper.from_array(np.array([0, -1], np.int64), "flat")
    cases = {}
    path = folder / "two_inputs.onnx"
    other = helper.make_tensor_value_info("other", TensorProto.FLOAT, ["n", 3, 112, 112])
    _write_graph(path, [helper.make_node("Add", ["image", "other"], ["sum"]), helper.make_node("Reshape", ["sum", "flat"], ["out"])],
                 [image, other], [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", "d"])], [flat])  # fmt: skip
    cases["two inputs"] = (path, "expected one image input, the graph has 2")
    path = folder / "tokens.onnx"
    _write_graph(path, [helper.make_node("Relu", ["ids"], ["out"])], [helper.make_tensor_value_info("ids", TensorProto.FLOAT, ["n", 77])],
                 [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 77])])  # fmt: skip
    cases["not an image"] = (path, "not a batch of colour images")
    path = folder / "map.onnx"
    _write_graph(path, [helper.make_node("Relu", ["image"], ["out"])], [image], [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 3, 112, 112])])
    cases["output not (N, D)"] = (path, "an embedding model gives (N, D)")
    path = folder / "nan.onnx"
    _write_graph(path, [helper.make_node("Log", ["image"], ["log"]), helper.make_node("Reshape", ["log", "flat"], ["out"])],
                 [image], [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", "d"])], [flat])  # fmt: skip
    cases["NaN"] = (path, "non-finite embeddings")
    path = folder / "unknown_op.onnx"
    _write_graph(path, [helper.make_node("GridSample", ["image", "image"], ["warped"]), helper.make_node("Reshape", ["warped", "flat"], ["out"])],
                 [image], [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", "d"])], [flat])  # fmt: skip
    cases["missing operator"] = (path, "unsupported ONNX operators at opset 17: GridSample (node 'warped'). Try: re-export")
    path = folder / "notes.onnx"
    path.write_text("not a model")
    cases["not ONNX"] = (path, "is not an ONNX model")
    return cases


def test_bad_model_files_are_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    [face] = write_face_folder(tmp_path / "in", 1)
    for case, (path, words) in _bad_graphs(tmp_path).items():
        out = tmp_path / f"{path.stem}.csv"
        code = main(["score", str(face), "-o", str(out), "--model", str(path), "--eps", "0.005", "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == EXIT_START_FAILED, case
        assert len(err.splitlines()) == 1 and words in err, (case, err)
        assert not out.exists(), case


def test_the_users_model_journey_from_a_file_to_a_shipped_one_pass_student(tmp_path, capsys):
    """README's 'Your own model' commands on a small graph: calibrate, score, distill, score with
    the student, export it, and run the export in onnxruntime."""
    import cv2
    import onnxruntime
    from PIL import Image

    from helpers import face_rgb

    model = tmp_path / "mobilefacenet.onnx"
    export(build("mobilefacenet-relu6", small=True), 112, model, "torchscript", 17, True)
    faces = tmp_path / "faces"
    for person, base in (("a", face_rgb()), ("b", np.ascontiguousarray(face_rgb()[:, ::-1]))):
        (faces / person).mkdir(parents=True)
        for i, sigma in enumerate((0.3, 1.5, 3.0, 5.0)):
            Image.fromarray(cv2.GaussianBlur(base, (0, 0), sigma)).save(faces / person / f"{i}.png")
    fast = ["--copies", "2", "--steps", "1"]

    assert main(["calibrate", str(faces), "--model", str(model), "--max-images", "4", *fast]) == EXIT_OK
    eps = capsys.readouterr().out.strip().splitlines()[-1].rsplit("--eps ", 1)[1]
    assert float(eps) > 0
    scores = tmp_path / "scores.csv"
    assert main(["score", str(faces), "-o", str(scores), "--model", str(model), "--eps", eps, *fast, "--quiet"]) == EXIT_OK
    student = tmp_path / "student.pt"
    assert main(["distill", str(scores), "--model", str(model), "-o", str(student), "--cache", str(tmp_path / "cache"), "--quiet"]) == EXIT_OK
    one_pass = tmp_path / "student.csv"
    assert main(["score", str(faces), "-o", str(one_pass), "--model", str(model), "--student", str(student), "--quiet"]) == EXIT_OK
    with open(one_pass, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and all(row["status"] == "ok" and 0 <= float(row["quality"]) <= 1 for row in rows)
    exported = tmp_path / "student.onnx"
    assert main(["export", "--model", str(model), "--student", str(student), "-o", str(exported)]) == EXIT_OK
    from faceqan.methods import create_method

    # The export runs at any batch size (the graph's flatten by view(size(0), -1) stays dynamic)
    # and gives the torch student's quality.
    chips = _faces(112, 3)
    expected = create_method("faceqan-student", create_model(str(model)), student=str(student))(chips)
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    [quality] = session.run(["quality"], {"chips": chips.numpy()})
    [single] = session.run(["quality"], {"chips": chips[:1].numpy()})
    assert np.allclose(quality, expected["quality"].numpy(), atol=1e-4) and np.allclose(single, quality[:1], atol=1e-5)


def test_a_low_rank_tail_student_of_an_onnx_graph_tunes_its_last_convolutions(tmp_path, capsys):
    """`distill --finetune-blocks N --finetune-rank R` on a converted graph: the shortest tail cut
    after a block boundary with N convolutions, stored as low-rank changes only; it scores, and its
    ONNX export gives the torch student's quality."""
    import onnxruntime

    from faceqan.methods import create_method
    from faceqan.student.graph_tail import GraphTail

    from helpers import write_face_folder

    model_file = tmp_path / "mobilefacenet.onnx"
    export(build("mobilefacenet-prelu", small=True), 112, model_file, "torchscript", 17, True)
    faces = write_face_folder(tmp_path / "faces", 6)
    scores, student = tmp_path / "scores.csv", tmp_path / "tail.pt"
    assert main(["score", *map(str, faces), "-o", str(scores), "--model", str(model_file), "--eps", "0.01", "--copies", "2", "--steps", "1", "--quiet"]) == EXIT_OK
    common = ["--model", str(model_file), "--cache", str(tmp_path / "cache"), "--quiet"]
    assert main(["distill", str(scores), "-o", str(tmp_path / "none.pt"), "--finetune-blocks", "999", *common]) == EXIT_START_FAILED
    assert "--finetune-blocks counts convolutions for an ONNX graph: 1 .. " in capsys.readouterr().err
    assert main(["distill", str(scores), "-o", str(student), "--finetune-blocks", "2", "--finetune-rank", "4", *common]) == EXIT_OK
    state = torch.load(student, weights_only=True)
    assert state["kind"] == "tail" and state["rank"] == 4
    assert {name.rsplit(".", 1)[-1] for name in state["tail"]} == {"down", "up", "bias", "weight", "quantiles"}
    assert not [name for name in state["tail"] if name.startswith("blocks.convs") and name.endswith(".weight")]  # no frozen conv weight
    model = create_model(str(model_file))
    method = create_method("faceqan-student", model, student=str(student))
    tail = method.net.head.blocks
    assert isinstance(tail, GraphTail) and len(tail.convs) >= 2
    factors = {name: tensor.float() for name, tensor in state["tail"].items() if name.endswith((".up", ".down"))}
    key = next(name.rsplit(".parametrizations", 1)[0] for name in factors)  # e.g. blocks.convs.0
    conv = method.net.head.get_submodule(key)
    original = model.network.get_buffer(model.network.constant_names[tail.nodes[int(key.rsplit(".", 1)[1])].input[1]])
    change = (factors[f"{key}.parametrizations.weight.0.up"] @ factors[f"{key}.parametrizations.weight.0.down"]).view_as(original)
    assert torch.allclose(conv.weight, original + change, atol=1e-6) and change.abs().max() > 0
    out = tmp_path / "student.csv"
    assert main(["score", *map(str, faces), "-o", str(out), "--model", str(model_file), "--student", str(student), "--quiet"]) == EXIT_OK
    with open(out, newline="") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == ["ok"] * 6
    exported = tmp_path / "tail.onnx"
    assert main(["export", "--model", str(model_file), "--student", str(student), "-o", str(exported)]) == EXIT_OK
    chips = _faces(112, 3)
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    [quality] = session.run(["quality"], {"chips": chips.numpy()})
    assert np.allclose(quality, method(chips)["quality"].numpy(), atol=1e-4)


def test_the_student_of_a_fixed_batch_graph_is_not_exported_for_one_batch_size_only(corpus, tmp_path, capsys):
    path = next(c[1] for c in corpus if c[1].name == "mobilefacenet-relu6-torchscript-17-batch1.onnx")
    faces = write_face_folder(tmp_path / "in", 6)
    scores, student = tmp_path / "scores.csv", tmp_path / "student.pt"
    assert main(["score", *map(str, faces), "-o", str(scores), "--model", str(path), "--eps", "0.01", "--copies", "2", "--steps", "1", "--quiet"]) == EXIT_OK
    assert main(["distill", str(scores), "--model", str(path), "-o", str(student), "--cache", str(tmp_path / "cache"), "--quiet"]) == EXIT_OK
    capsys.readouterr()
    assert main(["export", "--model", str(path), "--student", str(student), "-o", str(tmp_path / "s.onnx")]) == EXIT_START_FAILED
    assert "exported for a fixed batch of 1" in capsys.readouterr().err
    assert not (tmp_path / "s.onnx").exists()
