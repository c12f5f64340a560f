#!/usr/bin/python3
"""A stand-in for the C `dit` tool, written on top of tools/pyref, to check the parity harness
itself: `test_*.py --dit tests/parity/fake_dit.py` must pass every case.

It reads model directories independently of tools/pyref/export.py (the inverse key mappings are
written here from docs/models.md), so it also cross-checks the exporter. Subcommands and flags
are those of the real tool: forward, decode, schedule, generate (with --latent-out)."""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from pyref import diffusion, st  # noqa: E402
from pyref import dit as pdit  # noqa: E402
from pyref import vae as pvae  # noqa: E402
from pyref import export  # noqa: E402  (only for the expected names/shapes in error messages)


def die(msg):
    print("dit: " + msg, file=sys.stderr)
    sys.exit(1)


def check_names(what, sd, want):
    """Every expected tensor present with its shape, named as in the file."""
    for k, v in want.items():
        if k == "pos_embed":
            continue
        if k not in sd:
            die("%s: missing tensor %s (expected shape %s)" % (what, k, list(v.shape)))
        if tuple(sd[k].shape) != tuple(v.shape):
            die("%s: tensor %s has shape %s, expected %s" % (
                what, k, list(sd[k].shape), list(v.shape)))


def load_dit(model):
    cfg = json.load(open(os.path.join(model, "transformer", "config.json")))
    sd = st.load(os.path.join(model, "transformer", "diffusion_pytorch_model.safetensors"))
    sd = {k: v.float() for k, v in sd.items()}
    layout = "diffusers" if "pos_embed.proj.weight" in sd else "original"
    check_names("transformer", sd, export.dit_state(pdit.from_config(cfg, device="meta"), layout))
    numerics = cfg.get("ditd_numerics", layout)
    if layout == "diffusers":
        b0 = "transformer_blocks.0.norm1.emb."
        o = {"x_embedder.proj.weight": sd.get("pos_embed.proj.weight"),
             "x_embedder.proj.bias": sd.get("pos_embed.proj.bias"),
             "t_embedder.mlp.0.weight": sd.get(b0 + "timestep_embedder.linear_1.weight"),
             "t_embedder.mlp.0.bias": sd.get(b0 + "timestep_embedder.linear_1.bias"),
             "t_embedder.mlp.2.weight": sd.get(b0 + "timestep_embedder.linear_2.weight"),
             "t_embedder.mlp.2.bias": sd.get(b0 + "timestep_embedder.linear_2.bias"),
             "y_embedder.embedding_table.weight": sd.get(b0 + "class_embedder.embedding_table.weight"),
             "final_layer.adaLN_modulation.1.weight": sd.get("proj_out_1.weight"),
             "final_layer.adaLN_modulation.1.bias": sd.get("proj_out_1.bias"),
             "final_layer.linear.weight": sd.get("proj_out_2.weight"),
             "final_layer.linear.bias": sd.get("proj_out_2.bias")}
        for i in range(cfg["num_layers"]):
            s, d = "transformer_blocks.%d." % i, "blocks.%d." % i
            for w in ("weight", "bias"):
                parts = [sd.get(s + "attn1.to_%s.%s" % (q, w)) for q in "qkv"]
                o[d + "attn.qkv." + w] = None if any(p is None for p in parts) else torch.cat(parts)
                o[d + "attn.proj." + w] = sd.get(s + "attn1.to_out.0." + w)
                o[d + "mlp.fc1." + w] = sd.get(s + "ff.net.0.proj." + w)
                o[d + "mlp.fc2." + w] = sd.get(s + "ff.net.2." + w)
                o[d + "adaLN_modulation.1." + w] = sd.get(s + "norm1.linear." + w)
        missing = [k for k, v in o.items() if v is None]
        if missing:
            die("transformer: missing tensor for %s" % missing[0])
        sd = o
    m = pdit.DiT(input_size=cfg["sample_size"], patch_size=cfg["patch_size"],
                 in_channels=cfg["in_channels"],
                 hidden_size=cfg["num_attention_heads"] * cfg["attention_head_dim"],
                 depth=cfg["num_layers"], num_heads=cfg["num_attention_heads"],
                 num_classes=cfg["num_embeds_ada_norm"],
                 learn_sigma=cfg["out_channels"] == 2 * cfg["in_channels"],
                 block=cfg.get("ditd_block", "adaln_zero"),
                 t_divisor=127 if numerics == "diffusers" else 128,
                 mlp_norm_eps=cfg.get("norm_eps", 1e-5) if numerics == "diffusers" else 1e-6).eval()
    want = m.state_dict()
    if "pos_embed" not in sd:
        sd["pos_embed"] = want["pos_embed"]
    for k, v in want.items():
        if k not in sd:
            die("transformer: missing tensor %s (expected shape %s)" % (k, list(v.shape)))
        if tuple(sd[k].shape) != tuple(v.shape):
            die("transformer: tensor %s has shape %s, expected %s" % (
                k, list(sd[k].shape), list(v.shape)))
    m.load_state_dict(sd)
    gc = cfg.get("ditd_guidance_channels", m.in_channels if numerics == "diffusers" else 3)
    return m, gc


LDM_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
LEGACY_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def from_ldm(k, nb):
    if k.startswith("first_stage_model."):
        k = k[len("first_stage_model."):]
    m = re.match(r"decoder\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(.*)$", k)
    if m:
        return "decoder.mid_block.attentions.0.%s.%s" % (LDM_ATTN[m.group(1)], m.group(2))
    k = re.sub(r"^decoder\.mid\.block_(\d)\.",
               lambda m: "decoder.mid_block.resnets.%d." % (int(m.group(1)) - 1), k)
    k = re.sub(r"^decoder\.up\.(\d+)\.block\.",
               lambda m: "decoder.up_blocks.%d.resnets." % (nb - 1 - int(m.group(1))), k)
    k = re.sub(r"^decoder\.up\.(\d+)\.upsample\.",
               lambda m: "decoder.up_blocks.%d.upsamplers.0." % (nb - 1 - int(m.group(1))), k)
    k = k.replace("nin_shortcut", "conv_shortcut").replace("decoder.norm_out", "decoder.conv_norm_out")
    return k


def load_vae(model):
    cfg = json.load(open(os.path.join(model, "vae", "config.json")))
    raw = st.load(os.path.join(model, "vae", "diffusion_pytorch_model.safetensors"))
    v = pvae.from_config(cfg).eval()
    nb = len(v.block_out_channels)
    keys = " ".join(raw)
    naming = ("ldm_prefixed" if "first_stage_model." in keys else "ldm" if "decoder.mid." in keys
              else "legacy" if ".query." in keys else "diffusers")
    check_names("vae", raw, {k: t for k, t in export.vae_state(v, naming).items()
                             if "encoder." not in k and "quant_conv" not in k or "post_quant" in k})
    sd = {}
    for k, t in raw.items():
        k2 = from_ldm(k, nb)
        m = re.match(r"(.*\.attentions\.0\.)(query|key|value|proj_attn)\.(.*)$", k2)
        if m:
            k2 = m.group(1) + LEGACY_ATTN[m.group(2)] + "." + m.group(3)
        if ".attentions.0.to_" in k2 and t.dim() == 4:
            t = t.reshape(t.shape[0], t.shape[1])
        sd[k2] = t.float()
    want = {k: t for k, t in v.state_dict().items() if k.startswith(("decoder.", "post_quant"))}
    for k, t in want.items():
        if k not in sd:
            die("vae: missing tensor %s (expected shape %s)" % (k, list(t.shape)))
        if tuple(sd[k].shape) != tuple(t.shape):
            die("vae: tensor %s has shape %s, expected %s" % (k, list(sd[k].shape), list(t.shape)))
    v.load_state_dict(sd, strict=False)
    return v


def write_png(path, x):
    """(3, H, W) decoder output -> 8-bit PNG, u8 = trunc(clamp(127.5 x + 128, 0, 255))."""
    from PIL import Image
    v = np.clip(np.float32(127.5) * x + np.float32(128.0), 0, 255).astype(np.uint8)
    Image.fromarray(v.transpose(1, 2, 0)).save(path)


def save(path, a, dtype="<f4"):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(a, dtype=dtype), version=(1, 0))


@torch.no_grad()
def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("--model")
    p.add_argument("--x")
    p.add_argument("--t")
    p.add_argument("--y")
    p.add_argument("--latent")
    p.add_argument("--steps", type=int)
    p.add_argument("--spacing", default="")
    p.add_argument("--class", dest="cls", type=int)
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--sampler", default="ddpm")
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--latent-out")
    p.add_argument("--batch", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--outdir")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("-o", dest="out")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.cmd == "schedule":
        try:
            save(a.out, diffusion.Schedule(a.steps, a.spacing).table(), "<f8")
        except ValueError as e:
            die(str(e))
    elif a.cmd == "forward":
        m, _ = load_dit(a.model)
        x = torch.from_numpy(np.load(a.x))
        t = torch.tensor([int(v) for v in a.t.split(",")])
        y = torch.tensor([int(v) for v in a.y.split(",")])
        save(a.out, m(x, t, y).numpy())
    elif a.cmd == "decode":
        load_dit(a.model)
        v = load_vae(a.model)
        z = torch.from_numpy(np.load(a.latent)) / v.scaling_factor
        if a.out.endswith(".png"):
            write_png(a.out, v.decode(z).numpy()[0])
        else:
            save(a.out, v.decode(z).numpy())
    elif a.cmd == "generate":
        m, gc = load_dit(a.model)
        v = load_vae(a.model)
        fn = lambda x, t, y: m(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
        z = diffusion.sample(fn, diffusion.Schedule(a.steps, a.spacing), a.sampler,
                             [a.cls] * a.n, a.cfg, a.seed,
                             (m.in_channels, m.input_size, m.input_size), m.num_classes, gc,
                             eta=a.eta)
        if a.latent_out:
            save(a.latent_out, z)
        img = v.decode(torch.from_numpy(z) / v.scaling_factor).numpy()
        if a.outdir:
            os.makedirs(a.outdir, exist_ok=True)
            for k in range(len(img)):
                write_png(os.path.join(a.outdir, "%06d.png" % k), img[k])
        else:
            write_png(a.out, img[0])
    else:
        die("unknown command " + a.cmd)


if __name__ == "__main__":
    main()
