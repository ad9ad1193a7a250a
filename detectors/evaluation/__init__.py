"""Benchmark scoring, kept apart from the algorithms: NAB, the shared corpora, the synthetic generators.

* :mod:`.nab_corpus`, :mod:`.nab_scoring`, :mod:`.nab` -- NAB loaded and scored exactly as NAB scores.
* :mod:`.corpora` -- every labelled dataset (SMD, SMAP, MSL, MGAB, NAB) as :class:`LabelledSeries`.
* :mod:`.metrics` -- point-wise, event-wise, point-adjusted and threshold-free metrics.
* :mod:`.references` -- the reference lines: a rolling Hotelling T² and River's HalfSpaceTrees.
* :mod:`.runners` -- one fresh model per series, series of one field count as streams of one bank.
* :mod:`.report`, :mod:`.plots` -- per-series and per-dataset results, tables, CSV/JSON, PNG plots.
* :mod:`.cli` -- ``python -m detectors evaluate``.
* :mod:`.generator_eval` -- the default engine on the nine synthetic generators.
"""
