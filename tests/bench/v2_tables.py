"""Tables of docs/scoring.md's v2 section from a results.csv (python tests/bench/v2_tables.py RUN/results.csv): per layer, directions averaged, in percent."""
import sys
import pandas as pd
from alignkit.results.rows import read_csv

df = read_csv(sys.argv[1])
df = df[df.layer >= 0]
words = [("P@1 NN", "p@1", "nn"), ("P@1 CSLS", "p@1", "csls"), ("P@1 margin", "p@1", "margin"),
         ("Procrustes P@1 NN", "procrustes_p@1", "nn"), ("Procrustes P@1 CSLS", "procrustes_p@1", "csls"),
         ("strong P@1", "strong_p@1", "nn"), ("strong P@1 centred", "strong_p@1", "nn+center"),
         ("same-lang share of strong misses", "strong_same_lang", "nn")]
sents = [("Tatoeba NN", "tatoeba_acc", "nn"), ("Tatoeba margin", "tatoeba_acc", "margin"),
         ("Tatoeba strong", "tatoeba_strong_p@1", "nn"), ("Tatoeba strong centred", "tatoeba_strong_p@1", "nn+center"),
         ("MEXA", "mexa", "")]
def table(sel_rows, specs, title):
    out = [f"### {title}", ""]
    for pair in dict.fromkeys(sel_rows.pair):
        g = sel_rows[sel_rows.pair == pair]
        cols = []
        for label, metric, method in specs:
            s = g[(g.metric == metric) & (g.method == method)].groupby("layer")["value"].mean() * 100
            if len(s):
                cols.append((label, s))
        layers = sorted(set().union(*[set(s.index) for _, s in cols]))
        out += [f"**{pair}** (percent, mean of both directions)", "",
                "| layer | " + " | ".join(l for l, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for L in layers:
            out.append(f"| {L} | " + " | ".join(f"{s.get(L, float('nan')):.1f}" for _, s in cols) + " |")
        # peak layers
        out.append("| best layer | " + " | ".join(str(int(s.idxmax())) for _, s in cols) + " |")
        out.append("")
    return out
L = table(df[df.lexicon != "tatoeba"], words, "Words (lexicon test split, 20000-word pools)")
L += table(df[df.lexicon == "tatoeba"], sents, "Tatoeba sentences")
print("\n".join(L))
