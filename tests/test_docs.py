"""The docs cannot drift from the data: generated tables match the result files, and every
link between the pages points at something that exists."""

from __future__ import annotations

import re
import sys

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import docs_tables


def test_generated_tables_match_the_result_files(capsys):
    assert docs_tables.main(["--check"]) == 0, capsys.readouterr().out


def test_every_table_is_generated_from_a_known_source():
    for page in (ROOT / "docs").glob("*.md"):
        for name in re.findall(r"<!-- table: ([\w-]+) -->", page.read_text()):
            assert name in docs_tables.TABLES, (page.name, name)


def test_relative_links_point_at_files_that_exist():
    broken = []
    for page in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
