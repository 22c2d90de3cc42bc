"""Numerics: arrays and scalars in, arrays out; no files, settings, plans or dask.

The recipe's steps (:mod:`.steps`: level clip, stack clip and means, post-stack clip),
the hot and noisy pixels (:mod:`.hotpix`), the QC rows (:mod:`.qc`), and the wrappers of
the compiled C kernels (:mod:`.levelclip`, :mod:`.stackclip`, :mod:`.masked`), which
check their arrays before calling C through the one signature table of :mod:`.native`.
"""
