import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from larq_bnas.document import Report, Section, Table, fmt, write_report  # noqa: E402


def test_report_writes_markdown_and_self_contained_html(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    picture = tmp_path / "img" / "curve.png"
    picture.parent.mkdir()
    fig.savefig(picture)
    report = Report(
        title="Run <1>",
        key_figures=[("test accuracy", "0.93")],
        sections=[
            Section(
                "Costs",
                ["BOPs & FLOPs"],
                Table(["model", "ops"], [["bnas-a", 9.88e7]]),
                [("learning curves", picture)],
            ),
        ],
    )
    md, page = write_report(report, tmp_path)
    text = md.read_text()
    assert "# Run <1>" in text and "| bnas-a | 9.880e+07 |" in text
    assert "![learning curves](img/curve.png)" in text
    html = page.read_text()
    assert "Run &lt;1&gt;" in html and "BOPs &amp; FLOPs" in html
    encoded = base64.b64encode(picture.read_bytes()).decode()
    assert f"data:image/png;base64,{encoded}" in html
    assert 'src="http' not in html and "<link" not in html  # nothing external


def test_fmt():
    assert fmt(None) == "-" and fmt(1234567) == "1,234,567" and fmt(0.5) == "0.5"
    assert fmt(2.5e8) == "2.500e+08" and fmt(True) == "yes"
