"""End to end on real data: Fashion-MNIST subset, 40% symmetric noise, detector on a fresh noise draw."""
import pytest

import mislabel
from mislabel import baselines, metrics, pipeline



def test_detector_finds_flips_on_a_fresh_noise_draw(tmp_path):
    if mislabel.data.fashion_mnist_folder() is None:
        pytest.skip("Fashion-MNIST not installed (make setup installs dataset-fashion-mnist)")
    kw = dict(subset=4000, noise="symmetric", rate=0.4, model="cnn", epochs=5, lr=0.05, test_subset=1000,
              progress=False, cache_dir=tmp_path)
    train_cap = pipeline.capture("fashion-mnist", noise_seed=0, **kw)
    test_cap = pipeline.capture("fashion-mnist", noise_seed=1, **kw)
    assert abs(train_cap.dynamics.is_flipped.mean() - 0.4) < 1e-9
    assert (train_cap.dynamics.is_flipped != test_cap.dynamics.is_flipped).any()
    assert train_cap.history["test_acc"][-1] > 0.7  # learns despite 40% noise
    det = pipeline.train_detector(train_cap, epochs=4, progress=False, cache_dir=tmp_path)
    res = metrics.evaluate(det.score(test_cap.dynamics), test_cap.dynamics.is_flipped)
    assert res["map"] > 0.8 and res["roc_auc"] > 0.85  # random ranking: mAP 0.4, AUC 0.5
    aum = metrics.evaluate(baselines.aum(test_cap.dynamics), test_cap.dynamics.is_flipped)
    assert aum["map"] > 0.8
    # the cache returns the same capture without retraining
    again = pipeline.capture("fashion-mnist", noise_seed=0, **kw)
    assert again.folder == train_cap.folder
    assert (again.dynamics.probs == train_cap.dynamics.probs).all()
