"""Outcome reports: ZRM outcomes per team and neighbourhood as MeasureReports.

- ``outcomes``: the quarter read from the dossier (each client's intake and latest follow-up
  per ZRM 2017 domain, their team and postcode area), the reports built by
  :mod:`mappings.care.outcomes` (small cells suppressed), recorded in the dossier;
- ``plugin``: ``eigendossier report outcomes --period YYYY-Qn`` and
  ``POST [base]/$evaluate-measure``.
"""
