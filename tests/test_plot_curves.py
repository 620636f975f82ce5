"""`reslab plot`: error against iterations from hand-written metrics.jsonl / config.json files;
seeds of one setting drawn as mean and range."""

from __future__ import annotations

import json

import pytest

from reslab import ReslabError
from reslab.cli import main
from reslab.curves import figure, group_runs, load_run


def _run(root, name, cfg, rows):
    d = root / name
    d.mkdir()
    if cfg is not None:
        (d / "config.json").write_text(json.dumps(cfg))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def _rows(offset, test=False):
    rows = []
    for it in (100, 200, 300):
        r = {"iteration": it, "train_error": 0.6 - it / 1000 + offset}
        if it != 100:
            r["val_error"] = 0.7 - it / 1000 + offset
            if test:
                r["test_error"] = 0.72 - it / 1000 + offset
        rows.append(r)
    return rows


@pytest.fixture
def runs(tmp_path):
    return [
        _run(tmp_path, "p20_s0", {"model": "plain20", "lr": 0.1, "seed": 0}, _rows(0.0)),
        _run(tmp_path, "p20_s1", {"model": "plain20", "lr": 0.1, "seed": 1}, _rows(0.1)),
        _run(tmp_path, "p56_s0", {"model": "plain56", "lr": 0.1, "seed": 0}, _rows(0.2, test=True)),
        _run(tmp_path, "p20_lr", {"model": "plain20", "lr": 0.01, "seed": 0}, _rows(0.3)),
    ]


def test_seeds_are_grouped_only_when_configs_differ_only_by_seed(runs):
    groups = group_runs([load_run(d) for d in runs])
    assert [len(g.runs) for g in groups] == [2, 1, 1]
    assert "2 seeds" in groups[0].label and "plain56" in groups[1].label and "lr=0.01" in groups[2].label
    its, mean, lo, hi = groups[0].series("train_error")
    assert its == [100, 200, 300]
    assert mean[0] == pytest.approx(0.55) and lo[0] == pytest.approx(0.5) and hi[0] == pytest.approx(0.6)
    assert groups[0].series("val_error")[0] == [200, 300]          # only where it was logged
    assert groups[0].series("test_error") is None and groups[1].series("test_error") is not None


def test_figure_labels_train_val_and_test(runs):
    groups = group_runs([load_run(d) for d in runs])
    ax = figure(groups).axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert sum(lab.endswith(": train") for lab in labels) == 3
    assert sum(lab.endswith(": val") for lab in labels) == 3
    assert [lab for lab in labels if lab.endswith(": test")] == [f"{groups[1].label}: test"]
    assert len(ax.collections) == 2                                # a band for each metric of the 2-seed group
    assert ax.get_ylabel() == "error (%)"


def test_cli_plot_writes_png_and_html(runs, tmp_path, capsys):
    png, page = tmp_path / "out" / "c.png", tmp_path / "c.html"
    assert main(["plot", *map(str, runs), "--out", str(png), "--html", str(page)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "data:image/png;base64," in text and "plain56" in text and "test error" in text
    assert "3 setting(s)" in capsys.readouterr().out


def test_cli_plot_bad_input_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in (["plot", str(tmp_path / "missing")], ["plot", str(empty)],
                 ["plot", str(empty), "--out", "x.svg"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
    d = _run(tmp_path, "nolog", None, [{"iteration": 1, "lr": 0.1}])
    with pytest.raises(ReslabError, match="nothing to plot"):
        figure(group_runs([load_run(d)]))


def _draw(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # mathtext is parsed only here, at draw time
    return buf.getvalue()


def test_a_single_validation_point_is_drawn_with_a_marker(tmp_path):
    d = _run(tmp_path, "short", {"model": "resnet20"},
             [{"iteration": 10, "train_error": 0.9}, {"iteration": 20, "train_error": 0.8, "val_error": 0.85}])
    ax = figure(group_runs([load_run(d)])).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    val = lines["resnet20: val"]
    assert len(val.get_xdata()) == 1 and val.get_marker() not in (None, "", "None")
    assert lines["resnet20: train"].get_marker() in (None, "", "None")  # a dense training curve stays a line


def test_title_names_only_what_is_drawn(runs):
    groups = group_runs([load_run(d) for d in runs])
    one_seed = [g for g in groups if len(g.runs) == 1 and g.series("test_error") is None]
    title = figure(one_seed).axes[0].get_title()
    assert "training (dashed)" in title and "validation (solid)" in title
    assert "test" not in title and "band" not in title
    title = figure(groups).axes[0].get_title()
    assert "test (dash-dot)" in title and "bands" in title
    title = figure(one_seed, ("val_error", "test_error")).axes[0].get_title()
    assert title == "validation (solid)"


def test_dollar_signs_from_files_do_not_crash_or_become_math(tmp_path):
    a = _run(tmp_path, "a", {"model": "resnet20", "note": r"$\frac{$"}, _rows(0.0))
    b = _run(tmp_path, "b", {"model": "resnet20", "note": "$x$"}, _rows(0.1))
    fig = figure(group_runs([load_run(a), load_run(b)]))
    assert _draw(fig)[:4] == b"\x89PNG"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(r"\$\frac{\$" in lab for lab in labels), labels  # escaped: drawn as the literal text


def test_default_output_is_not_replaced_without_overwrite(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(runs[0])]) == 0
    first = (tmp_path / "curves.png").read_bytes()
    assert main(["plot", str(runs[2])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "curves.png" in err and "--overwrite" in err and "--out" in err
    assert (tmp_path / "curves.png").read_bytes() == first
    assert main(["plot", str(runs[2]), "--overwrite"]) == 0
    assert (tmp_path / "curves.png").read_bytes() != first
    assert main(["plot", str(runs[0]), "--out", "curves.png"]) == 0  # a file named with --out is replaced


def test_cli_plot_with_a_broken_mathtext_label_writes_a_png(tmp_path):
    d = _run(tmp_path, "m", {"model": r"$\frac{$"}, _rows(0.0))
    png = tmp_path / "m.png"
    assert main(["plot", str(d), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
