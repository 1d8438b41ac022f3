"""Writes a miniature GLUE copy in the classic layout, one file per task and split."""

from pathlib import Path

MNLI_HEAD = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)


def mnli_row(i, a, b, label):
    return f"{i}\t\t\t\t\t\t\t\t{a}\t{b}\t{label}\t{label}"


FILES = {
    "CoLA/train.tsv": ["gj04\t1\t\tThe sailors rode the breeze.", "gj04\t0\t*\tThe more we study verbs."],
    "CoLA/dev.tsv": ["gj04\t1\t\tThe weights made the rope stretch.", "cl07\t0\t*\tHerself likes Mary."],
    "SST-2/train.tsv": ["sentence\tlabel", "a charming journey \t1", "hide new secretions \t0"],
    "SST-2/dev.tsv": ["sentence\tlabel", "it 's a charming film . \t1", "dull and lifeless \t0"],
    "MRPC/train.tsv": [
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        '1\t7\t8\tHe said "no".\tHe refused.',
        "0\t9\t10\tIt rained.\tThe sun shone.",
    ],
    "MRPC/dev.tsv": ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\tA cat sat.\tA cat was sitting."],
    "QQP/train.tsv": [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "\t\t\tHow to cook?\tHow do I cook?\t1",
        "1\t2\t3\tWhy is sky blue?\tWhat is love?\t0",
    ],
    "QQP/dev.tsv": ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "5\t6\t7\tWho?\tWhom?\t0"],
    "MNLI/train.tsv": [
        MNLI_HEAD,
        mnli_row(0, "A man eats.", "A person eats.", "entailment"),
        mnli_row(1, "A man eats.", "Nobody eats.", "contradiction"),
        mnli_row(2, "A man eats.", "He is hungry.", "neutral"),
    ],
    "MNLI/dev_matched.tsv": [MNLI_HEAD, mnli_row(0, "Dogs bark.", "Animals make noise.", "entailment")],
    "QNLI/train.tsv": [
        "index\tquestion\tsentence\tlabel",
        "0\tWhat is red?\tApples are red.\tentailment",
        "\tWho?\tNobody knows why.\tnot_entailment",
    ],
    "QNLI/dev.tsv": ["index\tquestion\tsentence\tlabel", "0\tWhere?\tIn Paris.\tentailment"],
    "RTE/train.tsv": [
        "index\tsentence1\tsentence2\tlabel",
        "0\tNo weapons found.\tWeapons found.\tnot_entailment",
        "1\tJohn runs.\tJohn moves.\tentailment",
    ],
    "RTE/dev.tsv": ["index\tsentence1\tsentence2\tlabel", "0\tDana died.\tDana is dead.\tentailment"],
    "WNLI/train.tsv": [
        "index\tsentence1\tsentence2\tlabel",
        "0\tI stuck a pin in a carrot.\tThe carrot had a hole.\t1",
    ],
    "WNLI/dev.tsv": ["index\tsentence1\tsentence2\tlabel", "0\tThe drain is clogged.\tThe hair must go.\t0"],
}


def write_glue(root: Path, skip: tuple[str, ...] = (), replace: dict[str, list[str]] | None = None) -> Path:
    for name, lines in {**FILES, **(replace or {})}.items():
        if name in skip:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
