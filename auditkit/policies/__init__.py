"""Gate policies shipped with auditkit: YAML files read with importlib.resources (``default.yaml``)."""
