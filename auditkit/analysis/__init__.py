"""Analysis section builders of an audit: cohorts and data, per-cohort blocks, external sites, fairness, recalibration.

Each builder is pure: it reads the run's read-only
:class:`~auditkit.analysis.context.AnalysisInputs` (the audited rows as arrays, the cohorts and
their roles, the cohort analyzer on the run's resamples, the operating point, the run context,
the settings and each cohort's metric distributions) and returns a frozen, typed section of
:mod:`auditkit.analysis.sections` whose ``to_dict()`` is its results.json form; the warnings it
raises travel with it as ``caveats``. :mod:`auditkit.audit.statistics` only sequences the
builders, adjusts the families of tests (copies) and collects the caveats. Layer: above
``stats``, below ``audit`` (the settings type is imported for annotations only).
"""
