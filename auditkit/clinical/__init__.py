"""Clinical validation beyond accuracy that needs the model or files: robustness runs and monitoring.

The pure statistics live in :mod:`auditkit.stats` (decision curves,
conformal sets, slices, robustness and label-free estimates); this package
holds what runs the model (:mod:`~auditkit.clinical.robustness` with the
declared :mod:`~auditkit.clinical.perturbations`) and what reads a finished
audit (:mod:`~auditkit.clinical.monitor`).
"""
