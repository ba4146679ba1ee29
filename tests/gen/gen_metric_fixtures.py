#!/usr/bin/python3
"""Writes tests/fixtures/metrics/scores.json: evaluated sets of already
tokenized captions with the BLEU-1..4, ROUGE-L and CIDEr-D scores (corpus
and per image) of the COCO caption toolkit; and, for `clipcap score`, the
first set as COCO results.json / annotations.json written the way people
write captions (capitals, glued clitics, final punctuation, which the
toolkit's PTB tokenisation undoes) with its scores in expected.txt; and a
small pair whose captions are empty or only whitespace (blank_*.json).

The scorers below are a plain-Python transcription of pycocoevalcap's
bleu_scorer.py (option "closest"), rouge.py and cider_scorer.py (CIDEr-D,
n=4, sigma=6), kept in their structure: dict-based n-gram counts, the same
constants and the same order of operations. They share nothing with the C
code they check.

    /usr/bin/python3 tests/gen/gen_metric_fixtures.py
"""
import json
import math
import os
import random
from collections import defaultdict


# ---- bleu_scorer.py ----------------------------------------------------
def bleu_precook(s, n=4):
    words = s.split()
    counts = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return len(words), counts


def bleu_cook_refs(refs, n=4):
    reflen = []
    maxcounts = {}
    for ref in refs:
        rl, counts = bleu_precook(ref, n)
        reflen.append(rl)
        for ngram, count in counts.items():
            maxcounts[ngram] = max(maxcounts.get(ngram, 0), count)
    return reflen, maxcounts


def bleu_cook_test(test, refs_tuple, n=4):
    testlen, counts = bleu_precook(test, n)
    reflen, refmaxcounts = refs_tuple
    result = {"reflen": reflen, "testlen": testlen,
              "guess": [max(0, testlen - k + 1) for k in range(1, n + 1)],
              "correct": [0] * n}
    for ngram, count in counts.items():
        result["correct"][len(ngram) - 1] += min(refmaxcounts.get(ngram, 0), count)
    return result


def bleu(gts, res, n=4):
    small, tiny = 1e-9, 1e-15
    ctest = [bleu_cook_test(res[i][0], bleu_cook_refs(gts[i], n), n) for i in gts]
    bleu_list = [[] for _ in range(n)]
    total_testlen = total_reflen = 0
    totalcomps = {"guess": [0] * n, "correct": [0] * n}
    for comps in ctest:
        testlen = comps["testlen"]
        total_testlen += testlen
        reflen = min((abs(l - testlen), l) for l in comps["reflen"])[1]
        total_reflen += reflen
        for key in ["guess", "correct"]:
            for k in range(n):
                totalcomps[key][k] += comps[key][k]
        b = 1.0
        for k in range(n):
            b *= (float(comps["correct"][k]) + tiny) / (float(comps["guess"][k]) + small)
            bleu_list[k].append(b ** (1.0 / (k + 1)))
        ratio = (testlen + tiny) / (reflen + small)
        if ratio < 1:
            for k in range(n):
                bleu_list[k][-1] *= math.exp(1 - 1 / ratio)
    bleus = []
    b = 1.0
    for k in range(n):
        b *= float(totalcomps["correct"][k] + tiny) / (totalcomps["guess"][k] + small)
        bleus.append(b ** (1.0 / (k + 1)))
    ratio = (total_testlen + tiny) / (total_reflen + small)
    if ratio < 1:
        for k in range(n):
            bleus[k] *= math.exp(1 - 1 / ratio)
    return bleus, bleu_list


# ---- rouge.py ----------------------------------------------------------
def my_lcs(string, sub):
    if len(string) < len(sub):
        sub, string = string, sub
    lengths = [[0 for _ in range(0, len(sub) + 1)] for _ in range(0, len(string) + 1)]
    for j in range(1, len(sub) + 1):
        for i in range(1, len(string) + 1):
            if string[i - 1] == sub[j - 1]:
                lengths[i][j] = lengths[i - 1][j - 1] + 1
            else:
                lengths[i][j] = max(lengths[i - 1][j], lengths[i][j - 1])
    return lengths[len(string)][len(sub)]


def rouge_calc(candidate, refs, beta=1.2):
    prec, rec = [], []
    token_c = candidate[0].split(" ")
    for reference in refs:
        token_r = reference.split(" ")
        lcs = my_lcs(token_r, token_c)
        prec.append(lcs / float(len(token_c)))
        rec.append(lcs / float(len(token_r)))
    prec_max, rec_max = max(prec), max(rec)
    if prec_max != 0 and rec_max != 0:
        return ((1 + beta ** 2) * prec_max * rec_max) / float(rec_max + beta ** 2 * prec_max)
    return 0.0


def rouge(gts, res):
    scores = [rouge_calc(res[i], gts[i]) for i in gts]
    return sum(scores) / len(scores), scores


# ---- cider_scorer.py ---------------------------------------------------
def cider_precook(s, n=4):
    """cider_scorer.py's precook: bleu_scorer.py's without the length."""
    return bleu_precook(s, n)[1]


def cider(gts, res, n=4, sigma=6.0):
    crefs = [[cider_precook(r, n) for r in gts[i]] for i in gts]
    ctest = [cider_precook(res[i][0], n) for i in gts]
    document_frequency = defaultdict(float)
    for refs in crefs:
        for ngram in set(ngram for ref in refs for ngram, count in ref.items()):
            document_frequency[ngram] += 1
    ref_len = math.log(float(len(crefs)))

    def counts2vec(cnts):
        vec = [defaultdict(float) for _ in range(n)]
        length = 0
        norm = [0.0 for _ in range(n)]
        for ngram, term_freq in cnts.items():
            df = math.log(max(1.0, document_frequency[ngram]))
            k = len(ngram) - 1
            vec[k][ngram] = float(term_freq) * (ref_len - df)
            norm[k] += pow(vec[k][ngram], 2)
            if k == 1:
                length += term_freq
        return vec, [math.sqrt(x) for x in norm], length

    def sim(vec_hyp, vec_ref, norm_hyp, norm_ref, length_hyp, length_ref):
        delta = float(length_hyp - length_ref)
        val = [0.0] * n
        for k in range(n):
            for ngram, count in vec_hyp[k].items():
                val[k] += min(vec_hyp[k][ngram], vec_ref[k][ngram]) * vec_ref[k][ngram]
            if norm_hyp[k] != 0 and norm_ref[k] != 0:
                val[k] /= norm_hyp[k] * norm_ref[k]
            val[k] *= math.e ** (-(delta ** 2) / (2 * sigma ** 2))
        return val

    scores = []
    for test, refs in zip(ctest, crefs):
        vec, norm, length = counts2vec(test)
        score = [0.0] * n
        for ref in refs:
            vec_ref, norm_ref, length_ref = counts2vec(ref)
            score = [a + b for a, b in zip(score, sim(vec, vec_ref, norm, norm_ref, length, length_ref))]
        score_avg = sum(score) / n
        score_avg /= len(refs)
        score_avg *= 10.0
        scores.append(score_avg)
    return sum(scores) / len(scores), scores


# ---- evaluated sets ------------------------------------------------------
WORDS = ("a an the man woman dog cat two people sitting on of in with next to table street bus red white "
         "large small standing riding horse field grass plate food pizza water beach is are near down "
         "young boy girl holding frisbee kite sky snow train tracks 's n't").split()


def caption(rng, base=None):
    if base is not None and rng.random() < 0.7:
        words = list(base)
        for _ in range(rng.randint(0, 4)):  # edits keep references overlapping
            op = rng.random()
            pos = rng.randint(0, len(words))
            if op < 0.4:
                words.insert(pos, rng.choice(WORDS))
            elif words and op < 0.7:
                del words[min(pos, len(words) - 1)]
            elif words:
                words[min(pos, len(words) - 1)] = rng.choice(WORDS)
        return words
    return [rng.choice(WORDS) for _ in range(rng.randint(1, 16))]


def make_set(rng, n_images, special=()):
    gts, res = {}, {}
    for i in range(n_images):
        base = caption(rng)
        gts[i] = [" ".join(caption(rng, base)) for _ in range(rng.randint(1, 6))]
        res[i] = [" ".join(caption(rng, base))]
    for i, (cand, refs) in enumerate(special):
        gts[i], res[i] = refs, [cand]
    return gts, res


def score_set(name, gts, res):
    b, b_img = bleu(gts, res)
    r, r_img = rouge(gts, res)
    c, c_img = cider(gts, res)
    images = []
    for k, i in enumerate(gts):
        images.append({"candidate": res[i][0], "references": gts[i],
                       "Bleu": [b_img[n][k] for n in range(4)], "ROUGE_L": r_img[k], "CIDEr": c_img[k]})
    return {"name": name, "Bleu": b, "ROUGE_L": r, "CIDEr": c, "images": images}


def raw_caption(rng, tokens):
    """A caption as a person writes it that the toolkit's PTB tokenisation
    turns back into `tokens`: clitics glued to the previous word, the first
    letter capitalised, a final period or comma-free punctuation. An empty
    token list becomes "." (one the tokenisation empties; blank captions
    are in write_blank_files)."""
    words = tokens.split()
    if not words:
        return "."
    out = []
    for w in words:
        if w in ("'s", "n't") and out and "'" not in out[-1] and rng.random() < 0.8:
            out[-1] += w
        else:
            out.append(w)
    text = " ".join(out)
    if text and rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    if text and rng.random() < 0.6:
        text += rng.choice([".", " .", "!", "?", "..."])
    return text


def write_coco_files(rng, set_, out_dir):
    """results.json / annotations.json in COCO form for `clipcap score`, the
    expected corpus scores as "KEY VALUE" lines in expected.txt and the
    per-image ones, keyed by image id as the toolkit's imgToEval, in
    expected_per_image.json."""
    results, annotations, per_image = [], [], {}
    for k, img in enumerate(set_["images"]):
        image_id = 1000 + 7 * k
        per_image[str(image_id)] = {"Bleu_%d" % (n + 1): img["Bleu"][n] for n in range(4)}
        per_image[str(image_id)].update(ROUGE_L=img["ROUGE_L"], CIDEr=img["CIDEr"])
        results.append({"image_id": image_id, "caption": raw_caption(rng, img["candidate"])})
        for ref in img["references"]:
            annotations.append({"image_id": image_id, "id": len(annotations), "caption": raw_caption(rng, ref)})
    rng.shuffle(annotations)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=0)
    with open(os.path.join(out_dir, "annotations.json"), "w") as f:
        json.dump({"images": [{"id": r["image_id"]} for r in results], "annotations": annotations}, f, indent=0)
    with open(os.path.join(out_dir, "expected.txt"), "w") as f:
        for n in range(4):
            f.write("Bleu_%d %.17g\n" % (n + 1, set_["Bleu"][n]))
        f.write("ROUGE_L %.17g\nCIDEr %.17g\n" % (set_["ROUGE_L"], set_["CIDEr"]))
    with open(os.path.join(out_dir, "expected_per_image.json"), "w") as f:
        json.dump(per_image, f, indent=0)
        f.write("\n")


def write_blank_files(out_dir):
    """blank_results.json / blank_annotations.json: captions that are empty
    or only whitespace, in either file. pycocoevalcap's PTB tokenisation
    turns each into "" and scores it as the empty caption (with rouge.py's
    "".split(" ") == [""]); the scores, corpus and per image keyed by image
    id, in blank_expected.json. The other captions are lower-case words, so
    their tokens are the text split at whitespace."""
    raw = [(" ", ["a dog on the beach", "two dogs"]),
           ("a dog", ["\t", "a dog"]),
           ("\n \t", [" "]),
           ("", ["", "a cat"]),
           ("a cat sitting", ["a cat", "the cat sits"])]
    gts = {i: [" ".join(r.split()) for r in refs] for i, (_, refs) in enumerate(raw)}
    res = {i: [" ".join(c.split())] for i, (c, _) in enumerate(raw)}
    s = score_set("blank", gts, res)
    def scores(b, r, c):
        out = {"Bleu_%d" % (n + 1): b[n] for n in range(4)}
        out.update(ROUGE_L=r, CIDEr=c)
        return out
    expected = {"corpus": scores(s["Bleu"], s["ROUGE_L"], s["CIDEr"]),
                "per_image": {str(i + 1): scores(img["Bleu"], img["ROUGE_L"], img["CIDEr"])
                              for i, img in enumerate(s["images"])}}
    results = [{"image_id": i + 1, "caption": c} for i, (c, _) in enumerate(raw)]
    annotations = [{"image_id": i + 1, "id": 10 * i + k, "caption": r}
                   for i, (_, refs) in enumerate(raw) for k, r in enumerate(refs)]
    for name, obj in (("blank_results.json", results), ("blank_annotations.json", {"annotations": annotations}),
                      ("blank_expected.json", expected)):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")


def main():
    rng = random.Random(20240531)
    special = [
        ("a man riding a horse", ["a man riding a horse"]),                      # identical
        ("", ["a dog on the beach", "two dogs"]),                                # empty candidate
        ("dog dog dog dog dog", ["a dog", "the dog is a good dog"]),             # clipping
        ("a cat", ["a cat sitting on a red table next to a large white plate"]),  # brevity
        ("the the the", ["the"]),                                                # repeats
        ("a dog", ["a dog", "a dog", "dog a"]),                                  # ties in length
        ("one", ["two three", "four"]),                                          # nothing shared
    ]
    sets = [score_set("main", *make_set(rng, 300, special)),
            score_set("one image", *make_set(rng, 1)),
            score_set("small", *make_set(rng, 5))]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "metrics")
    write_coco_files(rng, sets[0], out_dir)
    write_blank_files(out_dir)
    out = os.path.join(out_dir, "scores.json")
    with open(out, "w") as f:
        json.dump({"generator": "tests/gen/gen_metric_fixtures.py", "sets": sets}, f, indent=1)
        f.write("\n")
    print("gen_metric_fixtures: %d sets -> %s" % (len(sets), os.path.normpath(out)))


if __name__ == "__main__":
    main()
