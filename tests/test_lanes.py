"""CPU lanes: a batch's images scored side by side, one intra-op thread each."""

import threading

import pytest
import torch

from faceqan.algorithm import FaceQAN
from faceqan.lanes import CpuLanes


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_items_run_side_by_side_in_order_one_thread_each(two_threads):
    meet = threading.Barrier(2, timeout=10)  # broken unless two items run at the same time

    def work(item: int) -> tuple[int, str, int]:
        meet.wait()
        return item, threading.current_thread().name, torch.get_num_threads()

    results = CpuLanes().map(work, range(4))
    assert [item for item, _, _ in results] == [0, 1, 2, 3]
    assert all(name.startswith("faceqan-lane") and threads == 1 for _, name, threads in results)
    assert torch.get_num_threads() == 2  # the caller keeps its own


def test_one_item_runs_in_the_caller(two_threads):
    assert CpuLanes().map(lambda _: threading.current_thread().name, [0]) == [threading.current_thread().name]


class RecordingNet(torch.nn.Module):
    """Records the thread and batch size of every forward pass."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((threading.current_thread().name, x.shape[0]))
        return self.net(x)


def test_faceqan_scores_a_batch_one_image_per_lane(two_threads, tiny_net, tiny_images):
    net = RecordingNet(tiny_net)
    scorer = FaceQAN(net, eps=0.01, steps=2, copies=3, seed=1)
    together = scorer(tiny_images[:3]).quality
    assert {name.startswith("faceqan-lane") for name, _ in net.calls} == {True}
    assert {size for _, size in net.calls} == {2, 3}  # clean + mirror, then the 3 copies of one image
    alone = torch.cat([scorer(tiny_images[i : i + 1]).quality for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_default_cpu_batch_follows_the_models_measured_lanes(two_threads, tiny_net):
    from faceqan.methods import create_method
    from faceqan.models.dlib import DLIB_SPEC
    from faceqan.models.sface import SFACE_SPEC
    from faceqan.models.spec import FaceModel

    assert create_method("faceqan", FaceModel(tiny_net, DLIB_SPEC)).default_batch_size() == 2  # one image per thread, side by side
    assert create_method("faceqan", FaceModel(tiny_net, SFACE_SPEC)).default_batch_size() == 1  # measured no faster, 500 MB more per lane
    assert create_method("faceqan", tiny_net).default_batch_size() == 1
    assert create_method("flip", FaceModel(tiny_net, DLIB_SPEC)).default_batch_size() == 1


def test_a_thread_started_after_the_lanes_gets_the_process_thread_count(two_threads):
    """torch.set_num_threads in a lane also sets what later threads start with (the service's
    /explain threads ran on one thread); the lanes keep their share, later threads the whole."""
    total = torch.get_num_threads()
    lanes = CpuLanes()
    shares = lanes.map(lambda _: torch.get_num_threads(), range(2))
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert later == [total] and torch.get_num_threads() == total
    assert shares == [total // 2] * 2 and lanes.map(lambda _: torch.get_num_threads(), range(2)) == shares
