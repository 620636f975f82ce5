"""The report renders from saved results alone: every section, figure, verdict and condition."""

import base64
from dataclasses import dataclass

import pytest

from reslab.cli import main
from reslab.experiments import EXPERIMENTS, REPRODUCE, base
from reslab.report.build import build
from reslab.report.build import headline

# A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@dataclass(frozen=True)
class _Cfg:
    scale: str = "quick"
    seeds: int = 3
    dataset: str = "fashion-mnist"
    recipe: str = "quick"


# vanishing reproduced, exploding partly, shattered contradicted, degradation not resolved
PASSED = {"vanishing": (True, True), "exploding": (True, None), "shattered": (False, True),
          "degradation": (None, None)}


def _saved_results(tmp_path, names=EXPERIMENTS):
    for name in names:
        data = {"tables": [{"title": "Test error", "head": ["net", "paper %"], "rows": [["resnet20", "n/a"]]}]}
        parts = [base.part(f"{name} part {i}", f"criterion {i} of {name}", ok, f"observed {i}",
                           source=f"source of {name}", quote=f"sentence {i} of {name}")
                 for i, ok in enumerate(PASSED.get(name, (True,)))]
        v = base.verdict(parts, f"summary of {name} <&>", checks=[base.check(f"check of {name}", "s", True, "o")],
                         findings=[base.finding(f"finding of {name}", "c", True, "o", prediction="1.21",
                                                source="Yang et al. 2019")],
                         unread=[f"unread source of {name}"], ratio=0.5, per_depth={"10": 1.0, "20": 2.0})
        res = base.make_results(name, f"claim of {name}", _Cfg(), data, v, seconds=1.5,
                                scope={"data": "fashion-mnist, 2,048 images", "budget": "400 iterations"})
        base.save_results(res, tmp_path / name)
        (tmp_path / name / f"{name}_fig.png").write_bytes(PNG)


def test_report_has_every_section_figure_and_condition(tmp_path):
    _saved_results(tmp_path)
    html_path, md_path = build(tmp_path)
    page, md = html_path.read_text(), md_path.read_text()
    for name in EXPERIMENTS:
        assert f"id='{name}'" in page and f"claim of {name}" in page
        assert f"({name}/{name}_fig.png)" in md
    assert page.count("data:image/png;base64,") == len(EXPERIMENTS)  # self-contained
    assert "src='http" not in page and "<script" not in page
    assert "summary of vanishing &lt;&amp;&gt;" in page  # escaped
    # every outcome counted as what it is; no title claims "reproduced"
    n = len(EXPERIMENTS)
    # (an experiment beyond the four seed claims gets one part, shown)
    head = f"{1 + n - 4} of {n} claims reproduced, 1 partly, 1 not resolved at this budget, 1 contradicted."
    assert head in page and md.startswith("# reslab") and head in md
    assert "reproduced</h1>" not in page and "reproduced\n" not in md.splitlines()[0]
    assert "Not resolved at this budget: exploding part 1" in page and "criterion 1 of exploding" in page
    assert "sentence 1 of exploding (source of exploding)" in md  # each part with the sentence it tests
    assert md.count("| CONTRADICTED |") == 1 and md.count("| NOT RESOLVED |") == 3
    assert "check of shattered" in page and "finding of vanishing" in page and "1.21 (Yang et al. 2019)" in md
    assert "unread source of degradation" in page
    assert "torch " in page and "cores" in page and "Seeds per experiment" in page and "reslab 0" in page
    assert "budget: 400 iterations" in page and "fashion-mnist, 2,048 images" in md  # scope beside each verdict
    assert "paper %" in page  # an experiment's own tables


def test_report_marks_missing_experiments(tmp_path):
    _saved_results(tmp_path, names=["shattered"])
    html_path, md_path = build(tmp_path)
    assert md_path.read_text().count("not run") == 3
    assert "0 of 1 claims reproduced, 1 contradicted." in html_path.read_text()


def test_headline_counts_each_outcome():
    def res(outcome):
        return {"verdict": {"outcome": outcome}}

    got = headline({"a": res(base.REPRODUCED), "b": res(base.PARTLY), "c": res(base.PARTLY), "d": None})
    assert got == "1 of 3 claims reproduced, 2 partly."
    got = headline({"a": res(base.NOT_RESOLVED), "b": res(base.CONTRADICTED), "c": res(base.NOT_JUDGED)})
    assert got == "0 of 3 claims reproduced, 1 not resolved at this budget, 1 contradicted, 1 not judged."
    assert headline({"a": res("not reproduced")}) == "0 of 1 claims reproduced, 1 contradicted."  # older files


def test_unknown_outcome_is_one_line(tmp_path, capsys):
    _saved_results(tmp_path, names=["shattered"])
    import json

    path = tmp_path / "shattered" / "results.json"
    data = json.loads(path.read_text())
    data["verdict"]["outcome"] = "<script>alert(1)</script>"
    path.write_text(json.dumps(data))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown outcome" in err and not (tmp_path / "report.html").exists()


def test_markdown_escapes_strings_from_results(tmp_path):
    _saved_results(tmp_path, names=["shattered"])
    import json

    path = tmp_path / "shattered" / "results.json"
    data = json.loads(path.read_text())
    data["verdict"]["summary"] = "<script>alert(1)</script>"
    path.write_text(json.dumps(data))
    _, md = build(tmp_path)
    assert "<script>" not in md.read_text() and "&lt;script&gt;" in md.read_text()


def test_report_command_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such results directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no experiment results" in capsys.readouterr().err
    (tmp_path / "shattered").mkdir()
    (tmp_path / "shattered" / "results.json").write_text("{broken")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.json" in err
    assert not (tmp_path / "report.html").exists()


def test_report_command_rebuilds(tmp_path, capsys):
    _saved_results(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").is_file() and "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--seeds", "0"], ["--only", "nothing"]])
def test_reproduce_bad_input(tmp_path, capsys, bad):
    try:
        rc = main(["reproduce", "--out", str(tmp_path / "o"), *bad])
    except SystemExit as e:  # argparse choices
        rc = e.code
    assert rc == 2 and not (tmp_path / "o").exists()


def test_reproduce_checks_every_config_before_running(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path / "o"), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_reproduce_end_to_end_at_tiny_scale(tmp_path, monkeypatch, capsys):
    """`reslab reproduce` runs all four experiments, then writes a report with every section."""
    from reslab.experiments import degradation, exploding, shattered, vanishing

    tiny = {
        vanishing: dict(dataset="synthetic", depths=(6,), width=32, n_images=256, probe_batch=128, batch=64, steps=2),
        exploding: dict(dataset="synthetic", depths=(6,), width=32, n_images=256, batch=64, steps=4),
        shattered: dict(depths=(2, 24, 50), max_lag=4, activity_depth=4),
        degradation: dict(dataset="synthetic", depths=(8, 14), width=0.25, batch_size=32, train_subset=256,
                          iterations=6, eval_every=3, log_every=3, train_error_window=3),
    }
    for module, over in tiny.items():
        real = module.config_for
        monkeypatch.setattr(module, "config_for", lambda scale, seeds=None, _r=real, _o=over, **kw: _r(scale, seeds, **{**_o, **kw}))
    assert main(["reproduce", "--out", str(tmp_path), "--seeds", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("[")]
    assert len(lines) == 4 and all(any(o.upper() + ":" in ln for o in base.OUTCOMES) for ln in lines)
    page = (tmp_path / "report.html").read_text()
    for name in REPRODUCE:
        assert (tmp_path / name / "results.json").is_file() and f"id='{name}'" in page
    assert page.count("data:image/png;base64,") >= 4 + 3  # vanishing/exploding/shattered have several figures


def test_report_into_a_read_only_folder_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """A folder the report cannot write to (simulated: every rename into it fails with EROFS,
    as on a read-only mount): exit 2, one line naming the file and the reason, nothing left."""
    import errno
    import os

    _saved_results(tmp_path, names=["shattered"])
    before = sorted(p.name for p in tmp_path.iterdir())
    real_replace = os.replace

    def read_only(src, dst, *a, **k):
        if str(dst).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", read_only)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "report.html" in err and "Read-only file system" in err
    assert "Traceback" not in err and sorted(p.name for p in tmp_path.iterdir()) == before
