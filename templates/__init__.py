"""Jinja2 templates and print CSS of the audit report (shipped as ``auditkit.templates``)."""
