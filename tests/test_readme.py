"""The README's example runs and prints what the README says it prints."""

import contextlib
import io
import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def test_readme_example_prints_what_it_claims():
    text = open(README, encoding="utf-8").read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    claimed = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    assert len(printed) == len(claimed) > 0
    for got, want in zip(printed, claimed):
        assert got.split(" ", 2)[2] == want.split(" ", 2)[2]  # all but the date and time
