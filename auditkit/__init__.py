"""auditkit: audit medical-imaging diagnostic CNNs before release.

The package is layered (see DESIGN.md): ``auditkit.stats`` holds pure
statistics over the predictions table, ``auditkit.data`` / ``auditkit.nets``
the images and models, ``auditkit.explain`` the attributions, ``auditkit.audit``
the orchestration that produces ``results.json``, and ``auditkit.report``,
``auditkit.gate`` the presentation and policy that read only that file.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
