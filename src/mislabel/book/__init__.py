"""The book's layer: everything the chapters of the executable book compute, apart from the library.

``import mislabel`` does not import this package; it needs the ``book`` extra
(pandas). The chapters (``notebooks/NN_*.md``) only set parameters, call these
functions, plot and glue their results into the prose:

* :mod:`~mislabel.book.profiles` — the size presets (``smoke``, ``cpu``, ``paper``);
* :mod:`~mislabel.book.chapter` — parameter checks, the settings table and note, ``metrics.json``;
* :mod:`~mislabel.book.runs` — shared captures and detectors, the detector-vs-AUM grid, the transfer targets;
* :mod:`~mislabel.book.tables` — summaries and comparison tables;
* :mod:`~mislabel.book.sentences` — the sentences and verdicts of chapters 1 to 5;
* :mod:`~mislabel.book.paper` — the paper's statements next to the book's results;
* :mod:`~mislabel.book.card_tables`, :mod:`~mislabel.book.card_sentences` — the model card (chapter 6);
* :mod:`~mislabel.book.recipe` — how the shipped detector is trained (``scripts/train_pretrained.py``);
* :mod:`~mislabel.book.cli` — ``mislabel-book run NN``, re-running one chapter with other parameters.
"""
