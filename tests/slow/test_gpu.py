"""The CUDA paths: training with capture, the recorder, the detector and torchrun with NCCL.

Skipped where no CUDA device is present (CI has none); run them on a GPU machine with
``python -m pytest tests/test_gpu.py``. Each compares the GPU result with the CPU one or with
an invariant that holds on any device.
"""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import torch
from test_distributed import _data, _free_port, _torchrun

import mislabel
from mislabel.train import predict

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

EPOCHS = 4


@pytest.fixture(scope="module", params=[False, True], ids=["fp32", "bf16"])
def cuda_run(request):
    ds, noisy, flipped = _data()
    run = mislabel.train.fit("cnn", ds.images, noisy, EPOCHS, record="train", is_flipped=flipped, device="cuda",
                             amp=request.param, progress=False, batch_size=64)
    return run, noisy, flipped


def test_fit_on_cuda_records_in_sample_order(cuda_run):
    run, noisy, flipped = cuda_run
    dyn = run.dynamics
    assert dyn.probs.shape == dyn.margins.shape == (len(noisy), EPOCHS)
    assert dyn.probs.dtype == np.float32
    assert np.isfinite(dyn.probs).all() and (dyn.probs >= 0).all() and (dyn.probs <= 1).all()
    np.testing.assert_array_equal(dyn.labels, noisy)
    # the model learns the given labels: clean samples end far above flipped ones
    last = dyn.probs[:, -1]
    assert last[~flipped].mean() > 0.4 > 0.15 > last[flipped].mean()
    assert run.history["train_acc"][-1] > 0.5
    assert next(run.model.parameters()).device.type == "cuda"


def test_fit_on_cuda_eval_record_matches_predict():
    """record="eval" after the last epoch equals a separate prediction with the final weights."""
    ds, noisy, flipped = _data()
    run = mislabel.train.fit("cnn", ds.images, noisy, 2, record="eval", device="cuda", progress=False,
                             batch_size=64)
    p = predict(run.model, ds.images, run.normalization)
    np.testing.assert_allclose(run.dynamics.probs[:, -1], p[np.arange(len(noisy)), noisy], atol=1e-5)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)


def test_recorder_on_cuda_equals_cpu():
    g = torch.Generator().manual_seed(1)
    N, C, B = 1000, 7, 128
    labels = torch.randint(0, C, (N,), generator=g)
    recs = {d: mislabel.DynamicsRecorder(N, num_classes=C, store_full=True, device=d) for d in ("cpu", "cuda")}
    for _ in range(3):
        perm = torch.randperm(N, generator=g)
        logits = torch.randn(N, C, generator=g) * 4
        for i in range(0, N, B):
            idx = perm[i:i + B]
            for d, rec in recs.items():
                rec.update(logits[idx].to(d), labels[idx].to(d), idx.to(d))
        for rec in recs.values():
            rec.next_epoch()
    cpu, gpu = recs["cpu"].result(), recs["cuda"].result()
    np.testing.assert_allclose(gpu.probs, cpu.probs, atol=1e-6)
    np.testing.assert_allclose(gpu.margins, cpu.margins, atol=1e-5)
    np.testing.assert_array_equal(gpu.runner_up, cpu.runner_up)
    np.testing.assert_array_equal(gpu.labels, labels.numpy())
    np.testing.assert_allclose(np.asarray(gpu.full, np.float32), np.asarray(cpu.full, np.float32), atol=1e-3)


def test_full_probabilities_streamed_from_cuda(tmp_path):
    ds, noisy, _ = _data()
    run = mislabel.train.fit("mlp", ds.images, noisy, 3, record="train", device="cuda", progress=False,
                             full_path=tmp_path / "full.npy")
    dyn = run.dynamics
    assert isinstance(dyn.full, np.memmap) and dyn.full.shape == (len(noisy), 3, 10)
    full = np.asarray(dyn.full, dtype=np.float32)
    np.testing.assert_allclose(full.sum(-1), 1.0, atol=1e-2)
    np.testing.assert_allclose(full[np.arange(len(noisy)), :, noisy], dyn.probs, atol=2e-3)


def test_shipped_detector_scores_the_same_on_cuda(cuda_run):
    dyn = cuda_run[0].dynamics
    cpu = mislabel.NoiseDetector.pretrained().score(dyn)
    gpu = mislabel.NoiseDetector.pretrained(device="cuda").score(dyn)
    assert gpu.shape == cpu.shape == (len(dyn),)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)   # cuDNN may use TF32 inside the LSTM


def test_detector_trains_on_cuda_and_loads_on_cpu(cuda_run, tmp_path):
    run, _, flipped = cuda_run
    det = mislabel.NoiseDetector(device="cuda")
    det.fit(run.dynamics, flipped, epochs=3, seed=0, progress=False)
    s_gpu = det.score(run.dynamics)
    assert mislabel.metrics.average_precision(s_gpu, flipped) > 0.8
    path = det.save(tmp_path / "det.pt")
    s_cpu = mislabel.NoiseDetector.load(path, device="cpu").score(run.dynamics)
    np.testing.assert_allclose(s_cpu, s_gpu, atol=1e-3)


@pytest.mark.skipif(_torchrun() is None, reason="torchrun not found")
def test_torchrun_nccl_one_process_per_gpu(tmp_path):
    n = torch.cuda.device_count()
    cmd = [_torchrun(), f"--nproc_per_node={n}", "--master_port", str(_free_port()), "-m", "mislabel.distributed",
           "--dataset", "synthetic", "--model", "cnn", "--epochs", "2", "--rate", "0.2", "--amp",
           "--out", str(tmp_path / "d.npz")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == n and summary["device"] == "cuda:0" and summary["shape"] == [2000, 2]
    dyn = mislabel.Dynamics.load(tmp_path / "d.npz")
    assert np.isfinite(dyn.probs).all() and dyn.is_flipped.sum() == 400


@pytest.mark.skipif(_torchrun() is None, reason="torchrun not found")
def test_torchrun_more_processes_than_gpus_says_so(tmp_path):
    n = torch.cuda.device_count()
    cmd = [_torchrun(), f"--nproc_per_node={n + 1}", "--master_port", str(_free_port()), "-m",
           "mislabel.distributed", "--dataset", "synthetic", "--model", "mlp", "--epochs", "1",
           "--out", str(tmp_path / "d.npz")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode != 0
    assert f"LOCAL_RANK {n}" in res.stderr and "--device cpu" in res.stderr
    assert not (tmp_path / "d.npz").exists()


@pytest.fixture
def deterministic_cudnn():
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


@pytest.mark.parametrize("model", ["cnn", "resnet20"])
def test_cuda_graph_steps_equal_eager_steps(model, deterministic_cudnn, monkeypatch):
    """Replayed graphs train the same model as eager steps: 2000 samples in batches of 64 give 31 full
    batches (3 eager, then captured and replayed) and an eager last batch of 16, each epoch."""
    replays = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda self: (replays.append(1), replay(self))[1])
    ds, noisy, flipped = _data()
    runs = {g: mislabel.train.fit(model, ds.images, noisy, 2, record="train", device="cuda", progress=False,
                                  batch_size=64, cuda_graphs=g) for g in (False, True)}
    assert len(replays) == 2 * 31 - 3
    eager, graphed = runs[False], runs[True]
    np.testing.assert_array_equal(graphed.dynamics.probs, eager.dynamics.probs)
    np.testing.assert_array_equal(graphed.dynamics.margins, eager.dynamics.margins)
    assert graphed.history["train_loss"] == eager.history["train_loss"]
    # the throw-away pass before the capture left no trace in the BatchNorm statistics
    for (k, a), b in zip(eager.model.state_dict().items(), graphed.model.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_cuda_graphs_on_a_gpu_other_than_the_current_one(deterministic_cudnn):
    """Streams and graphs are made on the model's device, not on the current one (cuda:0)."""
    ds, noisy, _ = _data()
    dev = f"cuda:{torch.cuda.device_count() - 1}"
    runs = [mislabel.train.fit("cnn", ds.images, noisy, 2, device=dev, progress=False, batch_size=64, cuda_graphs=g)
            for g in (False, True)]
    assert torch.cuda.current_device() == 0
    np.testing.assert_array_equal(runs[1].dynamics.probs, runs[0].dynamics.probs)


class _SyncingNet(torch.nn.Module):
    """A forward that reads a value on the host: fine eagerly, impossible to capture."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = x.flatten(1)
        if float(x.abs().max()) > 1e6:
            x = x / 1e6
        return self.fc(x)


def test_own_module_trains_eagerly_by_default_and_capture_failure_says_so():
    ds = mislabel.data.load("digits")
    y = ds.labels.numpy()
    run = mislabel.train.fit(_SyncingNet(), ds.images, y, 1, device="cuda", progress=False, batch_size=64)
    assert run.dynamics.probs.shape == (len(y), 1)
    with pytest.raises(RuntimeError, match="cuda_graphs=False"):
        mislabel.train.fit(_SyncingNet(), ds.images, y, 1, device="cuda", progress=False, batch_size=64,
                           cuda_graphs=True)
