"""Fuzzing every file reader: random mutations of small valid files, for a bounded time each (seeded).

Each mutated input must load or raise the reader's one clear error (``ValueError``; ``CLIError`` for the CLI's
scores CSV), never another exception, a hang (an input that takes more than a few seconds) or a jump in memory.
Mutations act on the file's bytes and, for containers, on what they hold (a zip member, the gzip payload), so
that they reach the parsers behind the checksums. The inputs tried per reader are printed (``pytest -s``).

A failure names the reader, the input number and the mutation: ``_mutant(valid, seed, k)`` rebuilds the input.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import random
import resource
import signal
import sys
import time
import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mislabel.cli_outputs import CLIError
from mislabel.data import core as data_core
from mislabel.data import cifar, fashion_mnist, uci
from mislabel.detector import NoiseDetector
from mislabel.dynamics import Dynamics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cifar_fakes import _write_fake_cifar10  # noqa: E402
from test_data import _idx_bytes, _write_rda  # noqa: E402

SECONDS = float(os.environ.get("MISLABEL_FUZZ_SECONDS", "3"))   # per reader
MAX_INPUTS = 2000
PER_INPUT_S = 10            # an input that takes longer is a hang
MAX_RSS_GROWTH = 1 << 30    # bytes of peak memory one reader's inputs may add
SEED = int(os.environ.get("MISLABEL_FUZZ_SEED", "33"))

_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                b"\x7f\xff\xff\xff", b"\x00\x00\x00\x80", b"\x01\x00\x00\x00", b"\x00\x00\x01\x00",
                b"9999999999", b"-1", b"nan", b"inf", b"\n", b",", b'"']


def _mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One random byte-level mutation of ``data`` and its name."""
    d = bytearray(data)
    n = len(d)
    kind = rng.choice(["flip", "byte", "interesting", "truncate", "delete", "insert", "duplicate", "zero"])
    if n == 0:
        kind = "insert"
    at = rng.randrange(max(n, 1))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            d[i] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        d[at] = rng.randrange(256)
    elif kind == "interesting":
        v = rng.choice(_INTERESTING)
        d[at:at + len(v)] = v
    elif kind == "truncate":
        d = d[:at]
    elif kind == "delete":
        del d[at:at + rng.randint(1, 64)]
    elif kind == "insert":
        d[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "duplicate":
        d[at:at] = d[at:at + rng.randint(1, 256)]
    else:
        d[at:at + rng.randint(1, 64)] = bytes(min(64, n - at))
    return bytes(d), f"{kind}@{at}"


def _zip_member_mutant(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A valid zip whose one member (.npy, a pickle, tensor data) holds mutated bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    infos = src.infolist()
    victim = rng.choice(infos)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in infos:
            body = src.read(info)
            if info is victim:
                body, what = _mutate(body, rng)
            dst.writestr(info.filename, body)
    return out.getvalue(), f"member {victim.filename}: {what}"


def _gzip_payload_mutant(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    body, what = _mutate(gzip.decompress(data), rng)
    return gzip.compress(body, mtime=0), f"payload: {what}"


def _mutant(valid: bytes, seed: int, k: int, container: str | None) -> tuple[bytes, str]:
    """Input ``k`` of a fuzz run: one to three mutations, of the bytes or of the container's contents."""
    rng = random.Random(seed * 1_000_003 + k)
    data, what = valid, []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        try:
            if container == "zip" and rng.random() < 0.6:
                data, w = _zip_member_mutant(data, rng)
            elif container == "gzip" and rng.random() < 0.6:
                data, w = _gzip_payload_mutant(data, rng)
            else:
                data, w = _mutate(data, rng)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, IndexError, zlib.error, NotImplementedError,
                RuntimeError):                        # the container is broken already: mutate its bytes
            data, w = _mutate(data, rng)
        what.append(w)
    return data, "; ".join(what)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _fuzz(name: str, valid: bytes, write, read, ok: tuple, container: str | None = None,
          seconds: float = SECONDS) -> int:
    """Run ``read()`` on mutants of ``valid`` (written by ``write(bytes)``) for ``seconds``; returns how many
    ran."""
    write(valid)
    read()                                            # the valid input loads
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    old = signal.signal(signal.SIGALRM, _alarm)
    end, k, kinds = time.monotonic() + seconds, 0, {"loaded": 0, "refused": 0}
    try:
        while time.monotonic() < end and k < MAX_INPUTS:
            data, what = _mutant(valid, SEED, k, container)
            write(data)
            signal.alarm(PER_INPUT_S)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read()
                kinds["loaded"] += 1
            except ok:
                kinds["refused"] += 1
            except _Hang:
                pytest.fail(f"{name}: input {k} ({what}) took more than {PER_INPUT_S} s")
            except Exception as exc:  # noqa: BLE001 - the point: anything else is a bug
                raise AssertionError(f"{name}: input {k} ({what}) raised {type(exc).__name__}: {exc}") from exc
            finally:
                signal.alarm(0)
            k += 1
    finally:
        signal.signal(signal.SIGALRM, old)
        write(valid)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    assert grown < MAX_RSS_GROWTH, f"{name}: peak memory grew by {grown / 2 ** 20:.0f} MiB"
    print(f"fuzz {name}: {k} inputs ({kinds['loaded']} loaded, {kinds['refused']} refused)")
    return k


# ------------------------------------------------------------------ the readers
def test_fuzz_dynamics_npz(tmp_path):
    rng = np.random.default_rng(0)
    n, t, c = 6, 4, 3
    d = Dynamics(rng.random((n, t), dtype=np.float32), rng.integers(0, c, n), rng.random(n) < 0.5,
                 rng.normal(size=(n, t)).astype(np.float32), rng.random((n, t, c)).astype(np.float16),
                 {"dataset": "x", "epochs": t}, rng.integers(0, c, (n, t)))
    path = d.save(tmp_path / "d.npz")
    assert _fuzz("dynamics .npz", path.read_bytes(), path.write_bytes, lambda: Dynamics.load(path),
                 (ValueError,), container="zip") > 0


def test_fuzz_detector_checkpoint(tmp_path):
    det = NoiseDetector(hidden_size=4, num_layers=1, seq_len=4, features="prob+margin")
    det.trained = True                               # random weights: a well-formed file is all that is needed
    path = tmp_path / "det.pt"
    det.save(path)
    assert _fuzz("detector checkpoint", path.read_bytes(), path.write_bytes, lambda: NoiseDetector.load(path),
                 (ValueError,), container="zip") > 0


def test_fuzz_fashion_mnist_idx_gz(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fm"
    folder.mkdir()
    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    images = gzip.compress(_idx_bytes(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), 2051), mtime=0)
    labels = gzip.compress(_idx_bytes(rng.integers(0, 10, 3, dtype=np.uint8), 2049), mtime=0)
    (folder / names[0]).write_bytes(images)
    (folder / names[1]).write_bytes(labels)

    def read():
        data_core._CACHE.clear()
        return fashion_mnist._parse_fmnist(folder, "test")

    for name, valid in zip(names, (images, labels)):
        path = folder / name
        assert _fuzz(f"idx.gz ({name})", valid, path.write_bytes, read, (ValueError,), container="gzip",
                     seconds=SECONDS / 2) > 0


def test_fuzz_cifar_pickles(tmp_path):
    folder, _, _ = _write_fake_cifar10(tmp_path, rows_per_batch=2, n_test=3)

    def read():
        data_core._CACHE.clear()
        return cifar._load_cifar("cifar10", "test", tmp_path, download=False)

    for name in ("test_batch", "batches.meta"):
        path = folder / name
        valid = path.read_bytes()
        assert _fuzz(f"CIFAR pickle ({name})", valid, path.write_bytes, read, (ValueError,), seconds=SECONDS / 2) > 0


def test_fuzz_mlbench_rda(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    path = tmp_path / "LetterRecognition.rda"
    _write_rda(path, "LetterRecognition", list(rng.integers(0, 16, (16, n)).astype(float)), 0,
               [chr(65 + k) for k in range(26)], np.arange(n) % 26 + 1, compress=lambda b: gzip.compress(b, mtime=0))
    assert _fuzz(".rda", path.read_bytes(), path.write_bytes, lambda: uci._mlbench_arrays("letter", path),
                 (ValueError,), container="gzip") > 0


def test_fuzz_scores_csv(tmp_path):
    from mislabel.cli import _read_scores
    n = 8
    dyn = Dynamics(np.full((n, 2), 0.5, np.float32), np.arange(n) % 3)
    path = tmp_path / "scores.csv"
    rows = ["rank,index,score,given_label"] + [f"{r + 1},{i},{0.9 - 0.1 * r:.6f},{i % 3}"
                                               for r, i in enumerate(np.random.default_rng(0).permutation(n))]
    valid = ("\n".join(rows) + "\n").encode()
    assert _fuzz("scores.csv", valid, path.write_bytes, lambda: _read_scores(path, dyn, "d.npz"), (CLIError,)) > 0


@pytest.mark.parametrize("seed", range(3))
def test_mutations_are_reproducible(seed):
    valid = bytes(range(256)) * 4
    assert _mutant(valid, seed, 5, None) == _mutant(valid, seed, 5, None)
    assert _mutant(valid, seed, 5, None)[0] != valid


def test_checkpoint_with_a_damaged_size_is_refused_before_allocating(tmp_path):
    """Found by reasoning about the fuzzer's mutations: a config whose hidden_size grew (one mutated pickle
    int) used to build and initialise the LSTM first (here ~2.3 GB) and only then find the weights mismatch."""
    det = NoiseDetector(hidden_size=4, num_layers=1, seq_len=4)
    det.trained = True
    det.save(tmp_path / "ok.pt")
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    payload["config"]["hidden_size"] = 12_000
    torch.save(payload, tmp_path / "big.pt")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="weights do not match the stored configuration.*hidden_size=12000"):
        NoiseDetector.load(tmp_path / "big.pt")
    assert time.perf_counter() - t0 < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0 < 200 * 2 ** 20
    payload["config"]["hidden_size"] = "four"
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="configuration is not a valid detector's"):
        NoiseDetector.load(tmp_path / "odd.pt")


def test_cifar_pickle_with_a_huge_memo_index_does_not_allocate_it(tmp_path):
    """Found by the fuzzer (CIFAR batches.meta, one flipped bit): LONG_BINPUT 23598449 made the C unpickler
    allocate a memo table of that many slots (peak memory +7 GiB over a few such inputs)."""
    folder, _, _ = _write_fake_cifar10(tmp_path, rows_per_batch=2, n_test=3)
    meta = folder / "batches.meta"
    raw = meta.read_bytes()
    at = raw.index(b"q", raw.index(b"cat"))           # the BINPUT after 'cat' (1-byte index) ...
    meta.write_bytes(raw[:at] + b"r" + (2 ** 31 - 1).to_bytes(4, "little") + raw[at + 2:])   # ... as LONG_BINPUT
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data_core._CACHE.clear()
    try:
        cifar._load_cifar("cifar10", "test", tmp_path, download=False)
    except ValueError:
        pass
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0 < 200 * 2 ** 20



def _npz_with_probs_header(path: Path, header: bytes, data: bytes) -> Path:
    """A valid zip holding a dynamics file whose probs.npy has the header dict text ``header``."""
    good = Dynamics(np.full((2, 3), 0.5, np.float32), [0, 1]).save(path)
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    text = header.ljust(117) + b"\n"
    members["probs.npy"] = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data
    with zipfile.ZipFile(path, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    return path


@pytest.mark.parametrize("header, found", [
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", None),                  # valid
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3 }", (SyntaxError, tokenize.TokenError)),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), \"\"\"", (SyntaxError, tokenize.TokenError)),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999), }", (MemoryError, ValueError)),
])
def test_dynamics_npz_damaged_headers_are_one_clear_error(tmp_path, header, found):
    """Found by the fuzzer: a damaged .npy header made Dynamics.load raise SyntaxError or tokenize.TokenError
    (numpy parses the header as a Python literal); and a header promising a huge shape has np.load allocate
    it before reading the data (now refused from the member's size)."""
    path = _npz_with_probs_header(tmp_path / "d.npz", header, np.full((2, 3), 0.5, np.float32).tobytes())
    if found is None:
        assert Dynamics.load(path).probs.shape == (2, 3)
        return
    with zipfile.ZipFile(path) as z, z.open("probs.npy") as fh:    # what numpy itself raises
        with pytest.raises(found):
            np.lib.format.read_array(fh)
    with pytest.raises(ValueError, match=r"d\.npz is not a readable \.npz file"):
        Dynamics.load(path)


def test_dynamics_npz_member_flagged_encrypted_is_one_clear_error(tmp_path):
    """Found by the fuzzer: zipfile raises RuntimeError for a member flagged "encrypted" (one flipped bit)."""
    raw = bytearray(Dynamics(np.full((2, 3), 0.5, np.float32), [0, 1]).save(tmp_path / "ok.npz").read_bytes())
    raw[raw.index(b"PK\x01\x02") + 8] |= 1            # the central directory's "encrypted" flag bit
    (tmp_path / "enc.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a readable .npz file.*encrypted"):
        Dynamics.load(tmp_path / "enc.npz")


def test_dynamics_npz_meta_with_invalid_code_points_is_one_clear_error(tmp_path):
    """Found by the fuzzer (seed 6): a code point beyond U+10FFFF in the stored meta string made reading it
    raise SystemError."""
    path = Dynamics(np.full((2, 3), 0.5, np.float32), [0, 1], meta={"d": "x"}).save(tmp_path / "d.npz")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["meta.npy"] = members["meta.npy"].replace("x".encode("utf-32-le"), b"\x00\x00\x80\x00")  # U+800000
    broken = str(np.frombuffer(members["meta.npy"][-4 * len('{"d": "x"}'):], dtype="<U10")[0])
    with pytest.raises(SystemError):                   # what reading it raised
        json.loads(broken)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ValueError, match=r"'meta' entry is not readable text"):
        Dynamics.load(path)
