"""A third-party reporter for cmi-harness: ``latex``, every table of the report as a LaTeX file.

It shows the reporter contract (see harness.reporter): ``write(report, out_dir)`` is called once
per ``harness report`` with the computed tables (``sections(report)`` gives them titled, in the
order the built-in Markdown report prints them) and returns the files it wrote, written
atomically so that an interrupted report never leaves half a file.
"""

from pathlib import Path

from harness import Reporter, atomic_write, hookimpl, sections

ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
           "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
           "−": "--", "Γ": r"$\Gamma$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$"}  # fmt: skip


def escape(text) -> str:
    return "".join(ESCAPES.get(c, c) for c in str(text))


def tabular(df) -> str:
    df = df.reset_index() if df.index.name else df  # the row label as a first column
    rows = [" & ".join(escape(c) for c in df.columns) + r" \\", r"\midrule"]
    rows += [" & ".join(escape("" if v is None else v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    body = "\n".join(rows)
    return f"\\begin{{tabular}}{{l{'r' * (len(df.columns) - 1)}}}\n\\toprule\n{body}\n\\bottomrule\n\\end{{tabular}}"


def write_latex(report, out: Path) -> list[Path]:
    parts = [r"% cmi-harness comparison report; needs \usepackage{booktabs}"]
    for title, df in sections(report):
        parts += [f"\\subsection*{{{escape(title)}}}", tabular(df), ""]
    path = Path(out) / "report.tex"
    atomic_write(path, ("\n".join(parts) + "\n").encode())
    return [path]


@hookimpl
def harness_reporters():
    return [Reporter("latex", "report.tex: every table as a booktabs tabular (an example reporter plugin)",
                     write_latex)]  # fmt: skip
