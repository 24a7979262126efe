"""``rnnkit generate`` for tagging and classification checkpoints: tags and labels, not search.

:mod:`rnnkit_cli.generate` loads the checkpoint and hands tagging and classification models
here; both modes call the Python API (:meth:`rnnkit.hub.Pretrained.tag`, ``classify`` and
``predict_split``), so the command and ``rnnkit.load`` give the same predictions.

- Raw lines (``--input FILE|-``): one output line per input line, in order, flushed after every
  ``--buffer-size`` lines. Tagging prints the tags, space-separated, one per token of the
  model's tokenizer (``--print-label``: the sentence label of a label head, a tab, then the
  tags); classification prints the label. A line without tokens gives an empty line; a line of
  more than ``--max-positions`` tokens is truncated, or skipped (an empty line) with
  ``--skip-invalid-size-inputs``, with a warning naming it.
- Binarized data (``DATA --gen-subset SPLIT``): per sentence ``S-i`` (tokens), ``T-i`` / ``H-i``
  (gold / predicted tags) and ``TL-i`` / ``HL-i`` (gold / predicted label; ``HL`` adds the
  label's probability after a tab), then one line ``Generate SPLIT: F1 = … | Acc = … |
  LabelAcc = …`` from :func:`rnnkit.scoring.tag_scores` (as ``rnnkit score --sys`` prints them).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from rnnkit import scoring
from rnnkit.errors import RnnkitError
from rnnkit.hub import Pretrained
from rnnkit.reporting import get_reporter
from rnnkit.tasks.tagging import model_config
from rnnkit_cli.generate import read_batches


def has_label_head(model: Pretrained) -> bool:
    """Whether the model predicts a sentence label (a classifier, or a tagger's label head)."""
    return model.task_name == "classification" or model_config(model.model).label_head


def label_lines(
    model: Pretrained, name: str, buffer_size: int, print_label: bool, out: IO[str],
    limit: tuple[int, bool] = (1024, False),
) -> None:  # fmt: skip
    """Tags (or labels) of each raw line of ``name`` (``-``: stdin), one output line each; a
    line over ``limit[0]`` tokens is truncated, or with ``limit[1]`` skipped (an empty line)."""
    if print_label and not has_label_head(model):
        raise RnnkitError(
            "--print-label: this tagger has no label head (train it with --label-head)"
        )
    where = "<stdin>" if name == "-" else name
    options = {"max_positions": limit[0], "skip_invalid": limit[1], "source_name": where}
    predict = model.classify if model.task_name == "classification" else model.tag
    for batch in read_batches(name, buffer_size):
        results = predict([text for _, text in batch], first_line=batch[0][0], **options)
        out.writelines(_shown(r, model.task_name, print_label) + "\n" for r in results)
        out.flush()


def _shown(result: dict[str, Any] | None, task: str, print_label: bool) -> str:
    """The output line of one result: empty for a line without tokens or skipped as too long."""
    if result is None or not result["tokens"]:
        return ""
    return result["label"] if task == "classification" else _tag_line(result, print_label)


def _tag_line(result: dict[str, Any], print_label: bool) -> str:
    tags = " ".join(result["tags"])
    return f"{result['label']}\t{tags}" if print_label else tags


def label_split(
    model: Pretrained, data: Path, subset: str, batch_size: int, max_tokens: int, quiet: bool,
    out: IO[str],
) -> None:  # fmt: skip
    """S-/T-/H-/TL-/HL- lines for every sentence of ``subset``, then its scores."""
    gold_tags: list[str] = []
    pred_tags: list[str] = []
    gold_labels: list[str] = []
    pred_labels: list[str] = []
    count = 0
    total = len(model.data_task(data).data(subset).sizes)
    with get_reporter().progress(f"generate {subset}", total=total) as bar:
        for results in model.predict_split(data, subset, batch_size, max_tokens):
            for r in results:
                i, count = r["id"], count + 1
                lines = [f"S-{i}\t{' '.join(r['tokens'])}"]
                if "tags" in r:
                    gold_tags.append(" ".join(r["gold_tags"]))
                    pred_tags.append(" ".join(r["tags"]))
                    lines += [f"T-{i}\t{gold_tags[-1]}", f"H-{i}\t{pred_tags[-1]}"]
                if r.get("gold_label") is not None:
                    gold_labels.append(r["gold_label"])
                    pred_labels.append(r["label"])
                    lines.append(f"TL-{i}\t{r['gold_label']}")
                if "label" in r:
                    lines.append(f"HL-{i}\t{r['label']}\t{r['prob']:.4f}")
                if not quiet:
                    out.write("\n".join(lines) + "\n")
            out.flush()
            bar.update(len(results))
    scores = []
    if model.task_name == "tagging":
        scores += scoring.tag_scores(pred_tags, gold_tags, "f1,acc")
    if gold_labels:
        scores += scoring.tag_scores(pred_labels, gold_labels, "label_acc")
    shown = " | ".join(s.text for s in scores) or f"{count} sentences, no gold labels"
    out.write(f"Generate {subset}: {shown}\n")
