from reslab.cli import main


def test_info_prints_counts(capsys):
    assert main(["info", "resnet56"]) == 0
    out = capsys.readouterr().out
    assert "853,018" in out and "weighted layers  56" in out and "stage3   64 x 8 x 8" in out


def test_info_input_size(capsys):
    assert main(["info", "resnet20", "--input-size", "1", "28", "28"]) == 0
    out = capsys.readouterr().out
    assert "stage3   64 x 7 x 7" in out and "269,434" in out  # 1 input channel: 288 fewer stem weights


def test_info_bad_model_is_one_line_exit_2(capsys):
    assert main(["info", "resnet57"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "6n+2" in err


def test_info_bad_input_size(capsys):
    assert main(["info", "resnet20", "--input-size", "0", "32", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--input-size" in err


def test_unknown_flag_is_one_line_exit_2(capsys):
    try:
        main(["info", "resnet20", "--bogus"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("argparse should exit")
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
