"""mislabel.data.WithIndex: a map-style dataset with each item's index, for a shuffling DataLoader."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, Subset, TensorDataset

import mislabel


def test_a_shuffling_loader_records_every_sample_under_its_index():
    x = torch.arange(10, dtype=torch.float32).reshape(10, 1)
    y = torch.tensor([0, 1] * 5)
    loader = DataLoader(mislabel.data.WithIndex(TensorDataset(x, y)), batch_size=3, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    rec = mislabel.DynamicsRecorder(num_samples=10)
    seen = []
    for xb, yb, ids in loader:
        assert ids.dtype == torch.int64 and torch.equal(xb[:, 0].long(), ids)   # the index is the item's own
        logits = torch.stack([xb[:, 0], -xb[:, 0]], 1)                            # class 0 logit = index
        rec.update(logits, yb, ids)
        seen += ids.tolist()
    rec.next_epoch()
    dyn = rec.result()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))           # shuffled, each once
    # hand-computed: p(class 0) = sigmoid(2 i); the given label alternates 0, 1
    i = np.arange(10)
    p0 = 1 / (1 + np.exp(-2 * i))
    np.testing.assert_allclose(dyn.probs[:, 0], np.where(i % 2 == 0, p0, 1 - p0), rtol=1e-5)


def test_subset_indices_are_positions_and_bad_datasets_are_refused():
    base = TensorDataset(torch.zeros(5, 1), torch.zeros(5, dtype=torch.long))
    wrapped = mislabel.data.WithIndex(Subset(base, [4, 2]))
    assert len(wrapped) == 2 and wrapped[1][2] == 1

    class Stream(IterableDataset):
        def __iter__(self):
            yield 0

    with pytest.raises(TypeError, match="dataset"):
        mislabel.data.WithIndex(Stream())
    with pytest.raises(TypeError, match="dataset"):
        mislabel.data.WithIndex([1, 2, 3])[0]
