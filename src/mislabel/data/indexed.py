"""``WithIndex``: any map-style dataset, with each item's index, for an ordinary shuffling ``DataLoader``.

:class:`mislabel.DynamicsRecorder` files every probability under the sample it
belongs to, so a training loop must know the index of each sample in a batch.
Wrapping a dataset that yields ``(input, label)`` makes it yield
``(input, label, index)``; PyTorch's default collate turns the indices of a
batch into an int64 tensor that ``recorder.update(logits, labels, ids)`` takes::

    loader = DataLoader(WithIndex(train_set), batch_size=64, shuffle=True)
    for x, y, ids in loader:
        logits = model(x)
        ...
        recorder.update(logits, y, ids)
"""
from __future__ import annotations

import torch.utils.data


class WithIndex(torch.utils.data.Dataset):
    """A map-style dataset whose item ``i`` is ``(input, label, i)``.

    Parameters
    ----------
    dataset : map-style dataset
        Has ``__len__`` and ``__getitem__``; item ``i`` is a tuple or list whose first two entries are the
        input and the label (further entries are dropped). Samplers and subsets work as usual: the index is
        the one the sampler asked for, i.e. the position in ``dataset``.

    Raises
    ------
    TypeError
        At construction, if ``dataset`` has no ``__len__`` or ``__getitem__`` (an iterable-style dataset
        has no stable index); when an item is read, if it is not an ``(input, label)`` pair.
    """

    def __init__(self, dataset):
        if isinstance(dataset, torch.utils.data.IterableDataset) or not (
                hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"dataset must be a map-style dataset (with __len__ and __getitem__), got "
                            f"{type(dataset).__name__}: an iterable-style dataset gives no stable sample index")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(f"dataset[{index}] must be an (input, label) pair, got {type(item).__name__}; wrap a "
                            "dataset whose items are (input, label)")
        return item[0], item[1], index
