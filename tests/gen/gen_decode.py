#!/usr/bin/python3
"""Reference fixtures for common/nn/decode (KV-cache greedy and beam search).

The reference is the paper's own generation code, generate2 (greedy) and
generate_beam, transcribed from the published repository (see
notes/HELPER_BRIEF.md) with `model.gpt(inputs_embeds=...)` replaced by a
plain-PyTorch GPT-2 with Hugging Face GPT2LMHeadModel semantics (inputs
embeddings + wpe, pre-norm blocks, causal attention scaled by 1/sqrt(head
dim), gelu_new, ln_f, logits tied to wte). Like the reference it recomputes
the whole sequence every step and decodes one prefix at a time; nothing is
shared with the C code.

Model: a tiny random GPT-2 (E=32, 2 layers, 4 heads, V=256, n_positions=72)
whose wte row 13 (the stop token ".") is scaled up, so that some captions end
early, at different steps, and others run to 67 tokens. Prefixes (k=4) come
from the two ClipCap mappers of tests/gen/gen_train_fixtures.py (the ones
the C mappers are parity-tested against) applied to random CLIP embeddings.

Candidate embeddings whose reference decode has a near-tie anywhere are
dropped, because a near-tie can legitimately go either way with the last bits
of an fp32 sum in another order: every greedy argmax wins by MIN_MARGIN in
logit, every beam step's `beam`-th best candidate beats the next by
MIN_MARGIN in average log-prob, and the final beam scores are MIN_MARGIN
apart. The smallest margins kept are written to README.md.

Files (tests/fixtures/decode/):
  gpt2/config.json, gpt2/model.safetensors   the model (hub layout)
  {mlp,transformer}_prefix.npy       [N, K, E] the prefixes decoded
  {mlp,transformer}_greedy.npy       [N, 67]  greedy token ids, -1 padded
  {mlp,transformer}_greedy_lp.npy    [N]      sum of log-softmax of the greedy tokens
  {mlp,transformer}_beam.npy         [N, 5, 67] beam-5 token ids, rank order, -1 padded
  {mlp,transformer}_beam_score.npy   [N, 5]   the reference's final scores (fp32)
  mlp_beam9.npy, mlp_beam9_score.npy          beam 5 with entry_length 9
(token ids are stored as float32, exact below 2^24.)

Run: /usr/bin/python3 tests/gen/gen_decode.py  (writes tests/fixtures/decode/)
"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clipcap_ref as ref  # noqa: E402
import gen_train_fixtures as gtf  # noqa: E402  (the mappers and the hub format writer)

OUT = os.path.join(HERE, "..", "fixtures", "decode")

E, NL, NH, V, NPOS = gtf.E, 2, 4, 256, 72
K = gtf.K
EPS = 1e-5
STOP = 13
STOP_SCALE = 2.2  # wte row 13 scale: some captions stop early, some never
ENTRY = 67
BEAM = 5
N_CAND = 40  # candidate embeddings tried per mapper
N_KEEP = 10  # kept per mapper
MIN_MARGIN = 2e-5


def gpt2_init(g):
    def rnd(*shape, std=0.2, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    p = {"wte.weight": rnd(V, E, std=0.3), "wpe.weight": rnd(NPOS, E, std=0.1)}
    p["wte.weight"][STOP] *= STOP_SCALE
    return ref.gpt2_blocks_init(p, rnd, E, NL, attn_std=0.3, mlp_proj_std=0.1)


class GPT:
    """model.gpt of the reference: __call__(inputs_embeds) -> logits, and
    transformer.wte(ids)."""

    def __init__(self, p):
        self.p = p

    def wte(self, ids):
        return self.p["wte.weight"][ids]

    def __call__(self, inputs_embeds):
        return ref.gpt2_forward(self.p, inputs_embeds, NH, NL, eps=EPS, ln=ref.torch_layer_norm)


def gap_at(sorted_desc, i):
    """sorted_desc[i-1] - sorted_desc[i], inf when the loser is -inf."""
    if i >= len(sorted_desc) or sorted_desc[i] == -math.inf:
        return math.inf
    return float(sorted_desc[i - 1] - sorted_desc[i])


def generate2(gpt, embed, entry_length=ENTRY, track=True):
    """The reference's greedy decoder; returns (tokens, sum of log-probs,
    smallest argmax margin), the last two only with track (bench/
    bench_caption.py times it without)."""
    tokens = None
    generated = embed
    lp, margin = 0.0, math.inf
    for _ in range(entry_length):
        logits = gpt(generated)[:, -1, :]
        next_token = torch.argmax(logits, -1).unsqueeze(0)
        if track:
            top2 = logits[0].topk(2).values
            margin = min(margin, float(top2[0] - top2[1]))
            lp += float(torch.log_softmax(logits.double(), -1)[0, next_token.item()])
        next_token_embed = gpt.wte(next_token)
        tokens = next_token if tokens is None else torch.cat((tokens, next_token), dim=1)
        generated = torch.cat((generated, next_token_embed), dim=1)
        if STOP == next_token.item():
            break
    return tokens.squeeze(0).tolist(), lp, margin


def generate_beam(gpt, embed, beam_size=BEAM, entry_length=ENTRY, track=True):
    """The reference's beam search, verbatim but for returning token lists and
    scores (rank order) and, with track, the smallest margin of every
    selection."""
    stop_token_index = STOP
    tokens = None
    scores = None
    seq_lengths = torch.ones(beam_size)
    is_stopped = torch.zeros(beam_size, dtype=torch.bool)
    generated = embed
    margin = math.inf
    for i in range(entry_length):
        logits = gpt(generated)[:, -1, :]
        logits = logits.softmax(-1).log()
        if scores is None:
            if track:
                margin = min(margin, gap_at(logits[0].sort(descending=True).values, beam_size))
            scores, next_tokens = logits.topk(beam_size, -1)
            generated = generated.expand(beam_size, *generated.shape[1:])
            next_tokens, scores = next_tokens.permute(1, 0), scores.squeeze(0)
            tokens = next_tokens
        else:
            logits[is_stopped] = -float(np.inf)
            logits[is_stopped, 0] = 0
            scores_sum = scores[:, None] + logits
            seq_lengths[~is_stopped] += 1
            scores_sum_average = scores_sum / seq_lengths[:, None]
            if track:
                margin = min(margin, gap_at(scores_sum_average.view(-1).sort(descending=True).values, beam_size))
            scores_sum_average, next_tokens = scores_sum_average.view(-1).topk(beam_size, -1)
            next_tokens_source = next_tokens // scores_sum.shape[1]
            seq_lengths = seq_lengths[next_tokens_source]
            next_tokens = next_tokens % scores_sum.shape[1]
            next_tokens = next_tokens.unsqueeze(1)
            tokens = tokens[next_tokens_source]
            tokens = torch.cat((tokens, next_tokens), dim=1)
            generated = generated[next_tokens_source]
            scores = scores_sum_average * seq_lengths
            is_stopped = is_stopped[next_tokens_source]
        next_token_embed = gpt.wte(next_tokens.squeeze()).view(generated.shape[0], 1, -1)
        generated = torch.cat((generated, next_token_embed), dim=1)
        is_stopped = is_stopped + next_tokens.eq(stop_token_index).squeeze()
        if is_stopped.all():
            break
    scores = scores / seq_lengths
    output_list = tokens.cpu().numpy()
    order = scores.argsort(descending=True)
    final = scores[order]
    for j in range(1, beam_size):
        margin = min(margin, float(final[j - 1] - final[j]))
    out = [output_list[j][: int(seq_lengths[j])].tolist() for j in order.tolist()]
    return out, [float(scores[j]) for j in order.tolist()], margin


def padded(seqs, width):
    a = np.full((len(seqs), width), -1, dtype=np.float32)
    for i, s in enumerate(seqs):
        a[i, : len(s)] = s
    return a


def save(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a, dtype=np.float32))


def main():
    os.makedirs(os.path.join(OUT, "gpt2"), exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2024)
    gp = gpt2_init(g)
    gpt = GPT(gp)
    mappers = {"mlp": (gtf.mlp_forward, gtf.mlp_init(g)), "transformer": (gtf.tmap_forward, gtf.tmap_init(g))}
    cfg = {"model_type": "gpt2", "n_embd": E, "n_head": NH, "n_layer": NL, "n_positions": NPOS, "n_ctx": NPOS,
           "vocab_size": V, "layer_norm_epsilon": EPS, "activation_function": "gelu_new"}
    with open(os.path.join(OUT, "gpt2", "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    gtf.save_safetensors(os.path.join(OUT, "gpt2", "model.safetensors"), {"transformer." + n: t for n, t in gp.items()})

    notes = []
    with torch.no_grad():
        for name, (fwd, mp) in mappers.items():
            clip = torch.randn(N_CAND, gtf.D, generator=g)
            prefixes = fwd(mp, clip).detach()
            kept = []
            for c in range(N_CAND):
                embed = prefixes[c : c + 1]
                gt, glp, gm = generate2(gpt, embed)
                bt, bs, bm = generate_beam(gpt, embed)
                extra = generate_beam(gpt, embed, entry_length=9) if name == "mlp" else None
                m = min(gm, bm, extra[2] if extra else math.inf)
                if m >= MIN_MARGIN:
                    kept.append((c, gt, glp, bt, bs, extra, gm, bm))
                if len(kept) == N_KEEP:
                    break
            assert len(kept) == N_KEEP, f"{name}: only {len(kept)} candidates without near-ties"
            glens = [len(k[1]) for k in kept]
            blens = [len(t) for k in kept for t in k[3]]
            # the cases the decoder must get right are all present
            assert ENTRY in glens and len({n for n in glens if n < ENTRY}) >= 2, (name, glens)
            assert ENTRY in blens and len({n for n in blens if n < ENTRY}) >= 3, (name, blens)
            assert any(max(len(t) for t in k[3]) < ENTRY for k in kept), (name, "no beam search ends early")
            save(f"{name}_prefix.npy", prefixes[[k[0] for k in kept]])
            save(f"{name}_greedy.npy", padded([k[1] for k in kept], ENTRY))
            save(f"{name}_greedy_lp.npy", np.array([k[2] for k in kept]))
            save(f"{name}_beam.npy", np.stack([padded(k[3], ENTRY) for k in kept]))
            save(f"{name}_beam_score.npy", np.array([k[4] for k in kept]))
            if name == "mlp":
                save("mlp_beam9.npy", np.stack([padded(k[5][0], 9) for k in kept]))
                save("mlp_beam9_score.npy", np.array([k[5][1] for k in kept]))
            notes.append(f"{name}: candidates {[k[0] for k in kept]} of {N_CAND}; greedy lengths {glens}; "
                         f"beam lengths {[[len(t) for t in k[3]] for k in kept]}; smallest greedy margin "
                         f"{min(k[6] for k in kept):.3g}, beam margin {min(k[7] for k in kept):.3g}")

    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tests/gen/gen_decode.py (plain PyTorch, the reference's generate2 and "
                "generate_beam); do not edit.\n"
                f"GPT-2: E={E} layers={NL} heads={NH} V={V} n_positions={NPOS}, wte row {STOP} scaled by "
                f"{STOP_SCALE}; prefix k={K}; stop token {STOP}; entry_length {ENTRY}; beam {BEAM}; "
                f"MIN_MARGIN {MIN_MARGIN}.\n" + "".join(n + "\n" for n in notes))


if __name__ == "__main__":
    main()
