"""freqlib — helpers behind the book *Frequency-domain explanations of CNN robustness*.

Modules are named for their concept: ``data``, ``spectral``, ``models``,
``train``, ``zoo``, ``profiles``, ``chapter``, ``verdicts``, ``runner``,
``ledger``, ``plots`` and one module per paper method.
"""
__version__ = "0.1.0"
