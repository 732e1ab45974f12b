"""The learned fallback: tokenisation, scoring, calibration, provenance, and that it never overrides a rule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bench import train_fallback
from incident_responder.classify import classify, engine, fallback
from incident_responder.models import GUIDE_CATEGORIES, Category

ROOT = Path(__file__).resolve().parents[3]
CLASSES = [*GUIDE_CATEGORIES, "unknown"]


# ------------------------------------------------------------------ tokenisation


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ModuleNotFoundError: No module named 'gsplat'", ["modulenotfounderror", "no", "module", "named", "gsplat"]),
        ("exit code 137 (errno 13)", ["exit", "code", "137", "errno", "13"]),
        ("job 1234567890 failed", ["job", "<num>", "failed"]),
        ("image sha256:4f9a1c0e2b7d3a5c", ["image", "sha256", "<id>"]),
        ("request id 8f14e45f-ceea-467e", ["request", "id", "<id>", "ceea", "467e"]),
        ("CUDA 11.8 on sm_75, cu118", ["cuda", "11", "8", "on", "sm_75", "cu118"]),
        ("x" * 40 + " ok", ["<long>", "ok"]),
        ("İstanbul ✨ kaputt", ["i̇stanbul", "✨", "kaputt"]),  # other scripts stay inside their word
        ("", []),
    ],
)
def test_tokens(line: str, expected: list[str]) -> None:
    assert fallback.tokens(line) == expected


def test_line_features_are_words_and_adjacent_pairs_each_once() -> None:
    assert fallback.line_features("access denied access denied") == [
        "access", "denied", "access denied", "denied access"]


def test_select_lines_keeps_error_lines_with_their_numbers() -> None:
    text = "step 1 loss=0.1\nRuntimeError: boom\nstep 2\nfatal: not a git repository"
    assert fallback.select_lines(text) == [(2, "RuntimeError: boom"), (4, "fatal: not a git repository")]


def test_select_lines_uses_every_line_when_none_looks_like_an_error() -> None:
    assert fallback.select_lines("the job stopped\n\nafter step 9") == [(1, "the job stopped"), (3, "after step 9")]


def test_select_lines_reads_both_ends_of_a_long_log_with_true_line_numbers() -> None:
    lines = [f"step {i}" for i in range(50_000)]
    lines[3] = "error: early"
    lines[-1] = "error: late"
    chosen = fallback.select_lines("\n".join(lines))
    assert chosen == [(4, "error: early"), (50_000, "error: late")]


def test_select_lines_is_bounded_on_a_log_of_error_lines() -> None:
    chosen = fallback.select_lines("\n".join(f"error {i}" for i in range(100_000)))
    assert len(chosen) == fallback.MAX_LINES
    assert chosen[0][0] == 1 and chosen[-1][0] == 100_000


def test_a_megabyte_line_is_cut_before_tokenising() -> None:
    features = fallback.document_features("error " + "a b " * 500_000)
    assert len(features) <= 3 * fallback.LINE_CHARS


# ------------------------------------------------------------------ scoring and calibration


def _toy(threshold: float = 0.6, temperature: float = 1.0, **extra) -> fallback.Model:
    return fallback.Model.from_dict({
        "format": fallback.FORMAT, "format_version": fallback.FORMAT_VERSION,
        "classes": ["cuda_gpu", "unknown"], "bias": [0.5, -0.5],
        "weights": {"cuda": [2.0, -2.0], "driver": [1.0, -1.0], "typeerror": [-3.0, 3.0]},
        "temperature": temperature, "calibration": [[0.0, 0.1], [0.5, 0.5], [0.9, 0.95]], "threshold": threshold,
        **extra,
    })


def test_scores_are_the_bias_plus_known_weights_over_the_root_of_their_number() -> None:
    assert _toy().scores({"cuda", "driver", "never-seen"}) == pytest.approx([0.5 + 3 / 2**0.5, -0.5 - 3 / 2**0.5])
    assert _toy().scores({"cuda"}) == pytest.approx([2.5, -2.5])
    assert _toy().scores(set()) == pytest.approx([0.5, -0.5])


def test_temperature_softens_the_posterior() -> None:
    sharp = _toy(temperature=1.0).probabilities({"cuda", "driver"})
    soft = _toy(temperature=4.0).probabilities({"cuda", "driver"})
    assert sum(sharp) == pytest.approx(1.0) and sum(soft) == pytest.approx(1.0)
    assert sharp[0] > soft[0] > 0.5


@pytest.mark.parametrize(("score", "confidence"), [(0.0, 0.1), (0.49, 0.1), (0.5, 0.5), (0.89, 0.5), (0.9, 0.95),
                                                   (1.0, 0.95)])
def test_calibration_table_is_a_step_function(score: float, confidence: float) -> None:
    assert _toy().calibrated(score) == confidence


def test_guess_answers_above_the_threshold_with_the_lines_that_drove_it() -> None:
    guess = _toy().guess("step 1\nerror: cuda driver too old\nstep 2")
    assert (guess.category, guess.predicted, guess.confidence) == ("cuda_gpu", "cuda_gpu", 0.95)
    assert guess.top_tokens[:2] == ("cuda", "driver")
    assert guess.evidence == ((2, "error: cuda driver too old"),)


def test_guess_abstains_below_the_threshold_and_on_unknown() -> None:
    assert _toy(threshold=0.99).guess("error: cuda driver").category is None
    unknown = _toy().guess("TypeError: x")
    assert (unknown.category, unknown.predicted) == (None, "unknown")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 99}, "retrain"),
        ({"bias": [0.0]}, "one value per class"),
        ({"temperature": 0}, "temperature"),
        ({"calibration": [[0.0, 0.9], [0.5, 0.1]]}, "ascending"),
        ({"calibration": []}, "non-empty"),
    ],
)
def test_a_bad_model_file_is_refused_with_what_to_do(change: dict, message: str) -> None:
    good = json.loads(fallback.MODEL_PATH.read_text(encoding="utf-8"))
    with pytest.raises(fallback.ModelError, match=message):
        fallback.Model.from_dict({**good, **change})


def test_isotonic_table_is_monotone_and_never_certain() -> None:
    preds = [("cuda_gpu", 0.2), ("cuda_gpu", 0.4), ("cuda_gpu", 0.6), ("cuda_gpu", 0.8), ("cuda_gpu", 0.9)]
    labels = ["unknown", "cuda_gpu", "unknown", "cuda_gpu", "cuda_gpu"]
    table = train_fallback.isotonic(preds, labels, [1.0] * 5)
    assert table[0][0] == 0.0
    assert [row[1] for row in table] == sorted(row[1] for row in table)
    assert table[-1][1] < 1.0


def test_threshold_is_the_lowest_confidence_meeting_the_target_precision() -> None:
    preds = [("cuda_gpu", 0.99)] * 60 + [("cuda_gpu", 0.7)] * 10 + [("unknown", 0.9)] * 5
    labels = ["cuda_gpu"] * 60 + ["unknown"] * 5 + ["cuda_gpu"] * 5 + ["unknown"] * 5
    assert train_fallback.choose_threshold(preds, labels, [1.0] * 75) == 0.99
    assert train_fallback.choose_threshold(preds, ["cuda_gpu"] * 70 + ["unknown"] * 5, [1.0] * 75) == 0.7


def test_guess_abstains_below_the_models_min_score_even_at_a_confident_step() -> None:
    guess = _toy().guess("error: cuda driver")
    assert guess.category == "cuda_gpu" and guess.confidence >= 0.6
    assert _toy(min_score=guess.score + 1e-6).guess("error: cuda driver").category is None
    assert _toy(min_score=guess.score).guess("error: cuda driver").category == "cuda_gpu"


def test_a_wrong_answer_pooled_into_the_top_step_moves_the_threshold_onto_the_posterior() -> None:
    # 170 right answers and one wrong (on an `unknown` case, weighted up) with a posterior above 150 of them: the
    # isotonic table pools them all into one step, so no calibrated confidence reaches 99.5 %; the posterior
    # itself still separates the 20 answers above the wrong one
    raw = [("cuda_gpu", 0.999 - i * 1e-5) for i in range(20)] + [("cuda_gpu", 0.9985)] + \
          [("cuda_gpu", 0.998 - i * 1e-5) for i in range(150)]
    labels = ["cuda_gpu"] * 20 + ["unknown"] + ["cuda_gpu"] * 150
    weights = [1.0] * 20 + [6.0] + [1.0] * 150
    table = train_fallback.isotonic(raw, labels, weights)
    assert train_fallback.choose_threshold(train_fallback.calibrate(raw, table), labels, weights) == 1.0
    assert train_fallback.choose_min_score(raw, labels, weights) == pytest.approx(0.999 - 19e-5)
    # nothing right enough: no posterior either
    assert train_fallback.choose_min_score([("cuda_gpu", 0.99)], ["unknown"], [1.0]) is None


def test_an_answer_equal_to_a_cases_also_counts_as_right_for_the_threshold_as_the_evaluation_scores_it() -> None:
    preds = [("cuda_gpu", 0.99)] * 60 + [("cuda_gpu", 0.7)] * 10
    rows = [{"label": "cuda_gpu"}] * 60 + [{"label": "unknown", "also": "cuda_gpu"}] * 10
    accepted = train_fallback.accepted_answers(rows)
    assert train_fallback.choose_threshold(preds, accepted, [1.0] * 70) == 0.7
    # scored by label alone, the same answers are wrong and the threshold rises above them
    assert train_fallback.choose_threshold(preds, [r["label"] for r in rows], [1.0] * 70) == 0.99


def test_unknown_cases_are_weighted_to_the_chosen_share() -> None:
    weights = train_fallback.case_weights(["cuda_gpu"] * 30 + ["unknown"] * 10)
    assert sum(weights[30:]) / sum(weights) == pytest.approx(train_fallback.UNKNOWN_SHARE)


def test_folds_keep_each_thread_on_one_side() -> None:
    rows = train_fallback.read_rows(train_fallback.TRAIN)
    folds = train_fallback.fold_of(rows)
    by_thread: dict[str, set[int]] = {}
    for row, fold in zip(rows, folds):
        by_thread.setdefault(train_fallback.thread_of(row["source"]), set()).add(fold)
    assert all(len(f) == 1 for f in by_thread.values())
    assert set(folds) == set(range(train_fallback.FOLDS))


# ------------------------------------------------------------------ provenance of the committed model


@pytest.mark.slow
def test_committed_model_is_what_the_trainer_produces_and_learns_from_log_and_label_alone(tmp_path: Path) -> None:
    """Retrains (about 10 s each) from train itself, then from a copy whose labeller's fields are changed."""
    retrained, _ = train_fallback.train(train_fallback.TRAIN)
    assert fallback.MODEL_PATH.read_text(encoding="utf-8") == train_fallback.dumps(retrained), \
        "retrain: python bench/train_fallback.py"
    rows = train_fallback.read_rows(train_fallback.TRAIN)
    assert any("also" in r for r in rows)
    changed = tmp_path / "train.jsonl"
    changed.write_text("".join(json.dumps({**{k: v for k, v in r.items() if k != "also"}, "note": "x", "cause": "y"})
                               + "\n" for r in rows), encoding="utf-8")
    relabelled, _ = train_fallback.train(changed)
    # what the Lambda scores with comes from log and label; `also` only decides which out-of-fold answers
    # count as right when the confidence table and the threshold are fitted
    for key in ("classes", "bias", "weights", "temperature"):
        assert relabelled[key] == retrained[key], key


def test_model_records_the_train_file_it_came_from() -> None:
    meta = fallback.load_model().meta
    assert meta["trained_on"] == "corpus/train.jsonl"
    assert meta["train_sha256"] == hashlib.sha256((ROOT / "corpus" / "train.jsonl").read_bytes()).hexdigest(), \
        "corpus/train.jsonl changed since the model was trained: python bench/train_fallback.py"
    for held_out in ("test", "test2"):
        assert meta["train_sha256"] != hashlib.sha256((ROOT / "corpus" / f"{held_out}.jsonl").read_bytes()).hexdigest()
    assert meta["train_cases"] == len(train_fallback.read_rows(train_fallback.TRAIN))


def test_model_is_small_and_versioned() -> None:
    assert fallback.MODEL_PATH.stat().st_size < 1_000_000
    model = fallback.load_model()
    assert model.classes == tuple(CLASSES)
    assert 0.5 <= model.threshold < 1.0 and model.temperature > 0


# ------------------------------------------------------------------ the engine's use of it


def _no_rule_text(catalog) -> str:
    """A log no rule matches but the model is sure about (from the model's own vocabulary, not a corpus log)."""
    model = fallback.load_model()
    for text in ("failed: workflow file github workflows yml is not valid, yaml syntax on line 3 col 4",
                 "error: sts assumed role is not authorized to perform this on resource",
                 "error: the gpu driver is too old for this cuda runtime version, cuda error",
                 # round 12's generic CUDA rule reads "cuda error"; these words stay below every rule
                 "workflow file github workflows yml: yaml syntax line 3 col 4 invalid"):
        if not engine.find_hits(text, catalog)[0] and model.guess(text).category is not None:
            return text
    pytest.fail("no probe text reaches the fallback")


def test_no_rule_answer_says_it_is_a_statistical_guess(catalog) -> None:
    text = _no_rule_text(catalog)
    diagnosis = classify(text, catalog=catalog, names={"job_name": "job-1"})
    guess = fallback.load_model().guess(text)
    assert diagnosis.category.value == guess.category
    assert diagnosis.cause == fallback.CAUSE
    assert diagnosis.rule_id == f"fallback.{guess.category}"
    assert diagnosis.title.startswith("Statistical guess, no rule matched")
    # the diagnosis shows the confidence rounded to 3 places; the threshold applies to the model's own value
    assert diagnosis.confidence == round(guess.confidence, 3)
    assert guess.confidence >= fallback.load_model().threshold
    assert diagnosis.evidence and diagnosis.evidence[0].line == 1
    assert "trained on labelled public logs" in diagnosis.remediation[0]
    info = catalog.categories[diagnosis.category]
    assert diagnosis.remediation[1:] == list(info.remediation)
    assert diagnosis.commands == [engine.fill_command(c, {"job_name": "job-1"}) for c in info.commands]


def _lead_text(catalog) -> str:
    """A log no rule matches, on which the model leans to a category below its answer threshold."""
    model = fallback.load_model()
    for text in ("error: gpu driver too old", "failed: workflow yaml invalid", "error: access denied for role",
                 "error: not authorized to assume role", "failed: the gpu went away"):
        if not engine.find_hits(text, catalog)[0] and fallback.lead(model.guess(text)) is not None:
            return text
    pytest.fail("no probe text gives a lead")


def test_an_unknown_answer_names_the_fallbacks_lead_without_answering_it(catalog) -> None:
    text = _lead_text(catalog)
    guess = fallback.load_model().guess(text)
    diagnosis = classify(text, catalog=catalog, names={"job_name": "job-1"})
    assert (diagnosis.category, diagnosis.cause, diagnosis.rule_id, diagnosis.confidence) == (
        Category.unknown, "no_matching_rule", None, 0.0)
    assert f"nearest {guess.predicted} (a lead, not a diagnosis: learned fallback p={guess.confidence:.2f})" \
        in diagnosis.title
    unknown, leaning = catalog.categories[Category.unknown], catalog.categories[Category(guess.predicted)]
    lead_line, *rest = diagnosis.remediation
    assert lead_line.startswith(f"Lead: a model trained on labelled public logs finds this log's wording nearest "
                                f"{guess.predicted} ({leaning.title}")
    assert fallback.LEAD_RECORD in lead_line and "below the confidence at which it answers" in lead_line
    assert rest == list(unknown.remediation)
    # the generic commands first, then the leaning category's own checks, each once, filled with the incident
    filled = [engine.fill_command(c, {"job_name": "job-1"}) for c in (*unknown.commands, *leaning.commands)]
    assert diagnosis.commands == list(dict.fromkeys(filled))
    assert diagnosis.commands[len(unknown.commands)] == filled[len(unknown.commands)]


def test_no_lead_when_the_fallback_is_switched_off(catalog, monkeypatch) -> None:
    text = _lead_text(catalog)
    monkeypatch.setenv(fallback.SWITCH, "off")
    diagnosis = classify(text, catalog=catalog)
    assert diagnosis.title == "No rule in the catalog explains this failure; read the evidence lines and the log"
    assert diagnosis.remediation == list(catalog.categories[Category.unknown].remediation)


@pytest.mark.parametrize(
    ("threshold", "text", "is_lead"),
    [
        (0.99, "error: cuda driver", True),  # leans to cuda_gpu at 0.95, below the threshold: a lead
        (0.6, "error: cuda driver", False),  # the same guess answers: the answer is the diagnosis, not a lead
        (0.99, "TypeError: x", False),  # leans to unknown
        (0.99, "error: nothing known", False),  # cuda_gpu by the bias alone, calibrated 0.5: below LEAD_CONFIDENCE
    ],
)
def test_a_lead_is_a_category_guess_below_the_threshold_and_at_least_the_lead_confidence(
        threshold: float, text: str, is_lead: bool) -> None:
    guess = _toy(threshold=threshold).guess(text)
    assert (fallback.lead(guess) is guess) is is_lead
    assert fallback.lead(None) is None


def test_the_switch_turns_it_off(catalog, monkeypatch) -> None:
    text = _no_rule_text(catalog)
    monkeypatch.setenv(fallback.SWITCH, "off")
    assert classify(text, catalog=catalog).cause == "no_matching_rule"


def test_it_abstains_on_a_log_with_nothing_to_go_on(catalog) -> None:
    diagnosis = classify("everything is fine\nstep 100 loss=0.1\n", catalog=catalog)
    assert (diagnosis.cause, diagnosis.rule_id) == ("no_matching_rule", None)
    assert "lead" not in diagnosis.title and not diagnosis.remediation[0].startswith("Lead:")


@pytest.mark.parametrize("case", train_fallback.read_rows(train_fallback.TRAIN)[::7], ids=lambda c: c["id"])
def test_it_never_overrides_a_rule(case: dict, catalog, monkeypatch) -> None:
    with_fallback = classify(case["log"], catalog=catalog)
    monkeypatch.setenv(fallback.SWITCH, "off")
    rules_alone = classify(case["log"], catalog=catalog)
    if rules_alone.cause == "no_matching_rule":
        assert with_fallback.cause in ("no_matching_rule", fallback.CAUSE)
    else:
        assert with_fallback == rules_alone


def test_a_rule_hit_wins_even_where_the_model_disagrees(catalog) -> None:
    text = f"{_no_rule_text(catalog)}\nModuleNotFoundError: No module named 'gsplat'"
    assert fallback.load_model().guess(text).predicted != "python_dependencies"
    diagnosis = classify(text, catalog=catalog)
    assert diagnosis.category.value == "python_dependencies" and diagnosis.cause != fallback.CAUSE


def test_the_reports_three_classifiers_answer_as_the_engine_would(catalog) -> None:
    """`bench/train_fallback.py --report` runs rules alone, rules + fallback and fallback alone."""
    model = fallback.load_model()
    text = _no_rule_text(catalog)
    ruled = "ModuleNotFoundError: No module named 'gsplat'"
    classifiers = train_fallback._classifiers(catalog, lambda log: model)
    assert classifiers["rules alone"](text, catalog).cause == "no_matching_rule"
    assert classifiers["rules + fallback"](text, catalog) == classify(text, catalog=catalog)
    assert classifiers["rules + fallback"](ruled, catalog) == classify(ruled, catalog=catalog)
    assert classifiers["fallback alone"](text, catalog).cause == fallback.CAUSE
    assert classifiers["fallback alone"](ruled, catalog).cause in (fallback.CAUSE, "no_matching_rule")


# ------------------------------------------------------------------ it reads the log as posted (posted.view)


def _coloured(line: str) -> str:
    """Every word cut by colour codes, as a terminal that colours parts of words writes it."""
    return " ".join(f"{word[:1]}\x1b[1;31m{word[1:]}\x1b[0m" if len(word) > 1 else word for word in line.split(" "))


def _posted_forms(line: str) -> dict[str, str]:
    clean = f"INFO starting training job 3dgs-prod-42\n{line}\nINFO shutting down"
    coloured = "\n".join(_coloured(part) for part in clean.split("\n"))
    return {
        "clean": clean,
        "ansi_inside_words": coloured,
        # CloudWatch's JSON of the coloured log: ESC becomes \u001b, line breaks \n
        "json_string_of_ansi": json.dumps({"timestamp": 1714557600000, "message": coloured + "\n"}),
        "python_repr_of_ansi": f"stderr = {(coloured + chr(10)).encode()!r}",
        "crlf_and_entities": clean.replace("\n", "\r\n").replace(":", "&#58;"),
    }


def test_words_hidden_by_a_posted_form_give_the_clean_forms_answer(catalog) -> None:
    """The fallback reads the posted view, as rules do: colour codes inside words, a JSON string or a Python
    repr with escapes, CRLF and HTML entities read as the clean log would (same words, same answer)."""
    forms = _posted_forms(_no_rule_text(catalog))
    clean = classify(forms["clean"], catalog=catalog)
    assert clean.cause == fallback.CAUSE
    words = {w for w in fallback.document_features(forms["clean"]) if " " not in w and len(w) > 2}
    for form, text in forms.items():
        if form.startswith(("ansi", "json", "python")):
            # read raw, the deciding words are hidden (each split by colour codes)
            assert not words & fallback.document_features(text), form
        assert not engine.find_hits(text, catalog)[0], form
        diagnosis = classify(text, catalog=catalog)
        assert (diagnosis.category, diagnosis.cause, diagnosis.confidence) == \
            (clean.category, clean.cause, clean.confidence), (form, diagnosis)
        assert [e.text for e in diagnosis.evidence] == [e.text for e in clean.evidence], form
        lines = text.split("\n")
        assert all(0 < e.line <= len(lines) for e in diagnosis.evidence), (form, diagnosis.evidence)


def test_the_fallback_reads_a_decoded_line_in_place_of_the_escaped_one(catalog) -> None:
    escaped = '{"message": "first line\\nsecond \\"line\\"\\n"}'
    reading = engine.fallback_input(f"head\n{escaped}\ntail", catalog).split("\n")
    assert reading[0] == "head" and reading[-1] == "tail"
    assert "" in reading and escaped not in reading  # the escaped line is emptied, on its own line number
    assert "second \"line\"" in reading


def test_the_fallback_reads_a_wrapped_run_joined(catalog) -> None:
    cut = ("INFO the loader read shard 00 of the scene, then shard 001 of the scene: the con"
           "tainer stopped")
    first, rest = cut[:80], cut[80:]  # a terminal's 80 columns, cut inside a word
    assert first.endswith("con")
    reading = engine.fallback_input(f"head\n{first}\n{rest}\ntail", catalog).split("\n")
    assert reading[0] == "head" and reading[-1] == "tail"
    assert first not in reading and rest not in reading
    assert cut in reading


def test_the_fallback_reads_the_same_text_in_training_and_in_the_engine(catalog, monkeypatch) -> None:
    """bench/train_fallback.py learns from engine.fallback_input; classify() scores engine.fallback_reading."""
    text = _posted_forms(_no_rule_text(catalog))["json_string_of_ansi"]
    seen = []
    monkeypatch.setattr(fallback, "consult", lambda reading, *args, **kwargs: seen.append(reading))
    classify(text, catalog=catalog)
    assert seen == [engine.fallback_input(text, catalog)]
