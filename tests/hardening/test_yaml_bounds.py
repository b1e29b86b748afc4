"""One bounded YAML loader for policies and audit configs: hostile documents end in one short sentence."""

from __future__ import annotations

import pytest
import yaml

from auditkit.audit.config import read_config_file
from auditkit.errors import ConfigError, PolicyError
from auditkit.gate.policy import parse_policy
from auditkit.yamlload import MAX_ALIASES, load_yaml

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)

HOSTILE = {
    "alias bomb": (LAUGHS, "aliases"),
    "deep nesting": ("x: " + "[" * 20000 + "]" * 20000, "nesting deeper"),
    "deep mappings": ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v", "nesting deeper"),
    "huge integer": ("name: p\nversion: " + "9" * 5000 + "\n", "cannot be read"),
    "impossible date": ("name: p\nversion: 2024-02-30\n", "cannot be read"),
    "unhashable key": ("? [1, 2]\n: x\n", "list or mapping"),
    "repeated key": ("name: a\nname: b\n", "appears twice"),
    "two documents": ("name: a\n---\nname: b\n", "invalid YAML"),
    "NUL byte": ("name: a\x00\n", "NUL"),
    "unclosed": ("rules: [\n", "invalid YAML at line"),
    "python tag": ("!!python/object/apply:os.system ['touch /tmp/x']\n", "invalid YAML"),
}


def test_the_laughs_document_is_small_and_really_a_bomb():
    assert len(LAUGHS) < 500
    expanded = yaml.safe_load(LAUGHS)["i"]  # oracle: PyYAML itself shares, but printing expands 9**9
    assert len(expanded) == 9 and len(expanded[0][0][0][0][0][0][0]) == 9


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_one_short_policy_and_config_error(case, tmp_path):
    text, fragment = HOSTILE[case]
    with pytest.raises(PolicyError) as refused:
        parse_policy(text.encode("utf-8"), source="policy.yaml")
    message = str(refused.value)
    assert fragment in message and message.startswith("policy.yaml: ")
    assert "\n" not in message and len(message) < 300
    config = tmp_path / "audit.yaml"
    config.write_bytes(text.encode("utf-8"))
    with pytest.raises(ConfigError) as refused:
        read_config_file(config)
    assert fragment in str(refused.value) and len(str(refused.value)) < 300


def test_bounds_leave_ordinary_documents_alone():
    aliases = "base: &b {min: 0.8}\n" + "".join(f"r{i}: *b\n" for i in range(MAX_ALIASES))
    assert load_yaml(aliases, source="x", error=PolicyError)["r0"] == {"min": 0.8}
    nested = "a: " + "[" * 30 + "1" + "]" * 30
    assert load_yaml(nested, source="x", error=PolicyError)["a"] == eval("[" * 30 + "1" + "]" * 30)
    with pytest.raises(PolicyError, match="bytes, more than"):
        load_yaml(b"a: 1\n" * 300_000, source="x", error=PolicyError)


def test_a_long_value_is_never_echoed_whole():
    text = "name: p\nversion: '1'\nrules:\n  - id: " + "x" * 5000 + "\n    metric: discrimination.test.auroc\n    min: 1\n    max: 2\n"
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, source="policy.yaml")
    assert len(str(refused.value)) < 400
