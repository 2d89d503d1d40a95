"""Evaluation bookkeeping: metrics from known masks, and the calibration / test split."""
import numpy as np
import pytest

from camseg.train.evaluate import _Scores, calibration_half, format_table, panoptic_quality


def _square(y0, x0, size, shape=(40, 40)):
    m = np.zeros(shape, bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_scores_from_known_masks():
    s = _Scores()
    gt = _square(0, 0, 10)
    pred = _square(0, 0, 10) | _square(10, 0, 10)[:, :]  # twice the label: IoU 0.5
    s.add("ade_sky", {"sky": (pred, gt)})
    a, b = _square(0, 0, 10), _square(20, 20, 10)
    # one person found exactly, one missed, one false positive
    s.add("coco", {}, ([a, _square(0, 25, 5)], [a, b], a | _square(0, 25, 5), a | b))
    m = s.metrics()
    assert m["iou"]["sky"] == 0.5
    assert abs(m["iou"]["person"] - 100 / 225) < 1e-9
    assert abs(m["person_pq"] - 1.0 / (1 + 0.5 + 0.5)) < 1e-9
    assert m["photos"] == 2 and m["photos_by_source"] == {"ade_sky": 1, "coco": 1}
    assert m["group_person_iou"] is None


def test_composites_are_reported_apart():
    s = _Scores()
    a = _square(0, 0, 10)
    s.add("group_composite", {}, ([a], [a], a, a))
    m = s.metrics()
    assert "person" not in m["iou"] and m["group_pq"] == 1.0 and m["group_person_iou"] == 1.0


def test_calibration_and_test_halves_partition_the_photos():
    halves = [calibration_half(i) for i in range(10)]
    assert sum(halves) == 5 and halves[0] != halves[1]
    assert panoptic_quality([], [_square(0, 0, 3)]) == (0.0, 0, 0, 1)


def test_person_false_positives_on_empty_scenes_are_counted_apart():
    s = _Scores()
    sky = np.zeros((4, 4), bool)
    for area in (0.0, 0.005, 0.2):  # nothing, a speck under 1 %, a "person" on a fifth of the frame
        s.add("ade_sky", {"sky": (sky, sky)}, None, area)
    s.add("ade_sky", {"sky": (sky, sky)})  # a scene with someone in it: not counted
    s.add("scene", {}, None, 0.3)  # a zebra taken for a person: reported apart from the landscapes
    m = s.metrics()
    assert m["person_free"]["ade_sky"]["scenes"] == 3 and m["person_free"]["ade_sky"]["fp_photos"] == 1
    assert abs(m["person_free"]["ade_sky"]["fp_area"] - 0.205 / 3) < 1e-9
    assert m["person_free"]["scene"] == {"scenes": 1, "fp_photos": 1, "fp_area": 0.3}
    assert "person" not in m["iou"]  # never mixed into the person IoU
    table = format_table(m)
    assert "on 3 ADE landscapes and streets" in table and "on 1 COCO photos of animals and objects" in table


def test_calibrate_asks_which_model_to_write_into(capsys, tmp_path):
    """Without --model, --calibrate wrote new offsets into the bundled model and its twin."""
    from camseg.train.evaluate import main

    with pytest.raises(SystemExit) as exc:
        main(["--calibrate", "--data", str(tmp_path)])
    assert exc.value.code == 2 and "name it with --model" in capsys.readouterr().err


def test_calibration_scores_person_iou_as_evaluate_does():
    """Person-free scenes (a verdict, not a label) count only in evaluate's false-positive figure:
    counted by calibration too, they pulled its person objective to 0.649 where evaluate
    reported 0.859, and moved the shipped person offset."""
    from camseg.train.data import Record
    from camseg.train.evaluate import calibration_truths

    image = np.zeros((8, 8, 3), np.uint8)
    person = np.zeros((8, 8), np.uint8)
    person[2:6, 2:6] = 255
    assert "person" not in calibration_truths(Record(image, {}, [], "ade_sky"))
    assert "person" not in calibration_truths(Record(image, {}, [], "scene"))
    assert calibration_truths(Record(image, {}, [person], "coco"))["person"].sum() == 16
    assert "person" in calibration_truths(Record(image, {}, [], "group_composite"))  # labelled: nobody


@pytest.mark.parametrize("argv, message", [(["--limit", "0"], "--limit must be at least 1"),
                                           (["--data", "/nonexistent"], "no such folder")])
def test_evaluate_checks_its_arguments_before_any_work(argv, message, capsys):
    from camseg.train.evaluate import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_pq_is_not_reported_as_zero_when_there_was_nothing_to_score():
    """A subset without people or composites (evaluate --limit 1) printed "person PQ 0.000"
    and wrote group_pq 0.0, where nothing was measured; IoU said "-" there already."""
    s = _Scores()
    sky = _square(0, 0, 10)
    s.add("ade_sky", {"sky": (sky, sky)})
    m = s.metrics()
    assert m["person_pq"] is None and m["person_sq"] is None and m["person_rq"] is None
    assert m["group_pq"] is None and m["group_rq"] is None
    table = format_table(m)
    assert "person PQ - (SQ -, RQ -)" in table
    # Only false positives: PQ 0 measured (not "nothing"), SQ undefined (nothing matched).
    s.add("coco", {}, ([_square(0, 0, 5)], [], _square(0, 0, 5), np.zeros((40, 40), bool)))
    m = s.metrics()
    assert m["person_pq"] == 0.0 and m["person_rq"] == 0.0 and m["person_sq"] is None
    assert "person PQ 0.000 (SQ -, RQ 0.000)" in format_table(m)


def test_a_data_folder_without_coco_is_refused_by_evaluate_and_pack(tmp_path, capsys):
    """They stopped with FileNotFoundError on coco_panoptic/panoptic.json, after reading the sets
    that were there."""
    from camseg.train.evaluate import main
    from camseg.train.pack import main as pack_main

    (tmp_path / "ade_sky").mkdir()
    for command in (main, pack_main):
        with pytest.raises(SystemExit) as exc:
            command(["--data", str(tmp_path), "--out", str(tmp_path / "out.npz")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "no coco_panoptic/panoptic.json (its folders: ade_sky)" in err, err


@pytest.mark.parametrize("calibrate", [[], ["--calibrate"]])
def test_a_missing_or_wrong_model_is_refused_before_the_photos_are_read(tmp_path, capsys, calibrate):
    """A missing, foreign or scene-only --model stopped with the runtime's traceback, after every
    held-out photo had been read."""
    from camseg.train.evaluate import main

    (tmp_path / "coco_panoptic").mkdir()
    (tmp_path / "coco_panoptic" / "panoptic.json").write_text("{}")  # read, it would fail: never read
    (tmp_path / "foreign.onnx").write_bytes(b"not a model")
    for model, message in [(tmp_path / "missing.onnx", "does not exist"), (tmp_path / "foreign.onnx", "not an ONNX")]:
        with pytest.raises(SystemExit) as exc:
            main(["--data", str(tmp_path), "--model", str(model), *calibrate])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "--model" in err and message in err, err
    assert (tmp_path / "foreign.onnx").read_bytes() == b"not a model"


def test_data_and_out_given_with_a_tilde_are_expanded(tmp_path, monkeypatch):
    """--data=~/data passed the check, expanded, then was read as './~/data'; --out=~/eval made a
    folder named '~'."""
    import camseg.train.evaluate as evaluate_mod

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data" / "coco_panoptic").mkdir(parents=True)
    (tmp_path / "data" / "coco_panoptic" / "panoptic.json").write_text("{}")
    seen = {}

    def fake_evaluate(model, data, out, **kwargs):
        seen.update(data=data, out=out)
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_mod, "evaluate", fake_evaluate)
    with pytest.raises(KeyboardInterrupt):
        evaluate_mod.main(["--data=~/data", "--out=~/eval"])
    assert seen == {"data": tmp_path / "data", "out": tmp_path / "eval"}


def test_evaluate_says_when_it_has_no_face_labels(tmp_path, monkeypatch, capsys):
    """Without the face labels the teeth figure is FASSEG's lip outlines (0.000) and the
    person-free scene line is missing; evaluate said nothing, where the trainer says so."""
    import camseg.train.evaluate as evaluate_mod

    (tmp_path / "data" / "coco_panoptic").mkdir(parents=True)
    (tmp_path / "data" / "coco_panoptic" / "panoptic.json").write_text("{}")

    def stop(*args, **kwargs):  # (the photos themselves are not what this is about)
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_mod, "evaluate", stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate_mod.main(["--data", str(tmp_path / "data"), "--face-labels", str(tmp_path / "none")])
    assert f"no face labels at {tmp_path / 'none'}: teeth scored on FASSEG's lip outlines only" in capsys.readouterr().err
