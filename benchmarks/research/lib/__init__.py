"""Detectors measured by the research scripts and never run by the daemon.

``sequential`` (ADWIN, Page-Hinkley, CUSUM, DDM, EDDM, HDDM behind one interface),
``scan`` (a two-window mean-shift scan, a negative result against the CUSUM bank)
and ``sketch`` (a log-bucket quantile histogram) lived in ``detectors/`` until the
product was required to reach every module it ships; they are kept here, with
their tests in ``tests/research/``, because the research results are measured
with them.
"""
