"""Package discovery that pyproject.toml alone cannot express.

``templates/`` sits at the top of the repository (the report's home) but ships
inside the wheel as the package ``auditkit.templates``; the directory mapping
lives in pyproject.toml, the package list here.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["auditkit", "auditkit.*"]), "auditkit.templates"])
