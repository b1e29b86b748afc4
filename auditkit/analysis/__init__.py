"""Analysis section builders of an audit: cohorts and data, per-cohort blocks, external sites, fairness.

Each module takes the run's :class:`~auditkit.analysis.context.AnalysisContext` (the audited rows as
arrays, the cohort analyzer on the run's resamples, the run context and the settings) and returns
results.json sections. :mod:`auditkit.audit.statistics` only sequences them. Layer: above
``stats``, below ``audit`` (the settings type is imported for annotations only).
"""
