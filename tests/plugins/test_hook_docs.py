"""Every hook in the plugin contract is documented, described in docs, and tested.

A hook added to ``skyhop_core/hookspecs.py`` (or the store contract,
``skyhop_core/storage/hookspecs.py``) fails here until it has a docstring, a
``## skyhop_xxx`` section in ``docs/plugin_hooks.md`` showing its signature, and a test in
the conformance suite (``skyhop_core/testing/``) that calls it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from skyhop_core import hookspecs, testing
from skyhop_core.storage import hookspecs as store_hookspecs

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "plugin_hooks.md"
SPEC_MARK = f"{hookspecs.PROJECT}_spec"


#: Every hookspec module: the backend contract and the store contract.
SPEC_MODULES = (hookspecs, store_hookspecs)


def hook_names() -> list[str]:
    return sorted(
        name
        for module in SPEC_MODULES
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if hasattr(fn, SPEC_MARK) and fn.__module__ == module.__name__
    )


def spec_of(name: str) -> object:
    return next(getattr(m, name) for m in SPEC_MODULES if hasattr(m, name))


def doc_sections() -> dict[str, str]:
    """``## skyhop_xxx`` heading -> the text up to the next heading."""
    text = DOCS.read_text()
    parts = re.split(r"^(#{1,2} .*)$", text, flags=re.MULTILINE)
    sections: dict[str, str] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        match = re.fullmatch(r"## (skyhop_\w+)\s*", heading)
        if match:
            sections[match.group(1)] = body
    return sections


def conformance_source() -> str:
    package = Path(testing.__file__).parent
    return "\n".join(path.read_text() for path in sorted(package.glob("*.py")))


def test_the_contract_has_hooks() -> None:
    assert len(hook_names()) >= 15, hook_names()


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_docstring(hook: str) -> None:
    doc = inspect.getdoc(spec_of(hook)) or ""
    assert len(doc) > 40, f"hookspecs.{hook} needs a docstring: what, when, returns."
    assert "versionadded" in doc, f"hookspecs.{hook}: say `.. versionadded::` in its docstring."


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_docs_section_with_its_signature(hook: str) -> None:
    sections = doc_sections()
    assert hook in sections, f"docs/plugin_hooks.md has no `## {hook}` section."
    body = sections[hook]
    signature = re.search(rf"def {hook}\((.*?)\)\s*(->|\n)", body, flags=re.DOTALL)
    assert signature, f"the `## {hook}` section must show `def {hook}(...)` in a code block."
    documented = re.findall(r"(\w+)\s*:", signature.group(1))
    expected = list(inspect.signature(spec_of(hook)).parameters)
    assert documented == expected, (
        f"`## {hook}` documents parameters {documented}; hookspecs.py has {expected}."
    )
    for word in ("Fires", "Returns", "Cancellation", "Default"):
        assert f"**{word}" in body, (
            f"`## {hook}` must say **{word}**: when it fires, what it returns, how it is "
            "cancelled, and its default implementation (or none)."
        )


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_exercised_by_the_conformance_suite(hook: str) -> None:
    assert re.search(rf"\b{hook}\b", conformance_source()), (
        f"no test in skyhop_core/testing/ calls {hook}; add it to the conformance suite."
    )


def test_docs_describe_no_hook_that_does_not_exist() -> None:
    stale = sorted(set(doc_sections()) - set(hook_names()))
    assert not stale, f"docs/plugin_hooks.md documents hooks that hookspecs.py lacks: {stale}"


def conformance_names(prefix: str) -> list[str]:
    from skyhop_core.testing.conformance import BackendConformance

    return sorted(n for n in dir(BackendConformance) if n.startswith(prefix))


def test_the_suite_has_fixtures_and_tests() -> None:
    assert "conformance_simulation" in conformance_names("conformance")
    assert len(conformance_names("test_")) >= 18, conformance_names("test_")


@pytest.mark.parametrize("fixture", conformance_names("conformance"))
def test_conformance_fixture_is_documented(fixture: str) -> None:
    assert f"`{fixture}`" in DOCS.read_text(), (
        f"docs/plugin_hooks.md does not mention the conformance fixture `{fixture}`; "
        "document it in 'The conformance suite'."
    )


@pytest.mark.parametrize("test", conformance_names("test_"))
def test_conformance_test_is_documented(test: str) -> None:
    assert f"| `{test}` |" in DOCS.read_text(), (
        f"the conformance test `{test}` has no row in the table of docs/plugin_hooks.md."
    )


@pytest.mark.parametrize("field", ["refuse", "lift", "leftovers"])
def test_simulation_field_is_documented(field: str) -> None:
    import attrs

    from skyhop_core.testing.failure_paths import Simulation

    assert field in attrs.fields_dict(Simulation)
    assert f"| `{field}` |" in DOCS.read_text(), f"Simulation.{field} is not in the docs' table."


def test_the_harness_helpers_for_unit_tests_are_documented() -> None:
    from skyhop_core.testing import harness

    text = DOCS.read_text()
    for name in ("make_context", "BackendHarness", "provision_offer", "node_less_handle"):
        assert hasattr(harness, name) or hasattr(harness.BackendHarness, name), name
        assert name in text, f"docs/plugin_hooks.md does not document harness `{name}`."
