#!/usr/bin/env python3
"""Convert DiT checkpoints (facebookresearch/DiT .pt files, diffusers .bin files) and a VAE into a
ditd model directory (docs/models.md, "Converting the official checkpoints").

    dit_convert.py --dit DiT-XL-2-256x256.pt --vae-dir sd-vae-ft-ema/ -o models/DiT-XL-2-256

Python standard library + numpy only: torch is never imported, and the checkpoints' pickles are
read by the restricted unpickler of ptload.py, which refuses anything but tensors and dicts, so a
malicious file cannot run code. Tensors keep their names and values (their dtype follows
--dtype); the configuration is inferred from the tensor shapes and every tensor the model needs is
checked for presence, shape and finite values before anything is written.
"""
import argparse
import json
import os
import re
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptload  # noqa: E402
import st_write  # noqa: E402

# hidden size -> heads of the paper's configurations (DiT-S, -B, -L, -XL)
PAPER_HEADS = {384: 6, 768: 12, 1024: 16, 1152: 16}
FREQ_DIM = 256            # timestep frequency embedding size
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
WEIGHTS = "diffusion_pytorch_model"
LDM_PREFIX = "first_stage_model."
VAE_ROOTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


class ConvertError(Exception):
    pass


def note(msg):
    print(msg, flush=True)


def warn(msg):
    print("warning: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Reading

def load_file(path):
    """Tensors or an object tree from a torch.save zip file or a safetensors file."""
    if not os.path.isfile(path):
        raise ConvertError("%s: no such file" % path)
    if ptload.sniff(path) == "safetensors":
        try:
            tensors, _ = st_write.read(path)
        except st_write.SafetensorsError as e:
            raise ConvertError(str(e))
        return tensors
    try:
        return ptload.load(path)
    except ptload.CheckpointError as e:
        raise ConvertError(str(e))


def is_tensor(v):
    return isinstance(v, (ptload.Tensor, st_write.StTensor))


def is_state_dict(obj):
    return (isinstance(obj, dict) and obj and
            all(isinstance(k, str) and is_tensor(v) for k, v in obj.items()))


def select_state_dict(obj, path, which="auto"):
    """The tensors of a checkpoint: a raw state_dict, or the "ema" (else "model") entry of a
    facebookresearch/DiT train.py checkpoint, or the "state_dict" of a Lightning checkpoint.
    Returns (state_dict, description)."""
    if is_state_dict(obj):
        if which != "auto":
            raise ConvertError("--weights %s: %s is a plain state_dict without 'ema' / 'model' "
                               "entries" % (which, path))
        return dict(obj), "raw state_dict"
    if not isinstance(obj, dict):
        raise ConvertError("%s: the checkpoint holds a %s, not a dict of tensors"
                           % (path, type(obj).__name__))
    keys = [k for k in obj if isinstance(k, str)]
    if which in ("ema", "model"):
        order = [which]
    elif which == "auto":
        order = ["ema", "model", "state_dict"]
    else:
        raise ConvertError("--weights %s: expected auto, ema or model" % which)
    for k in order:
        if k in obj and is_state_dict(obj[k]):
            others = [o for o in keys if o != k]
            return dict(obj[k]), "the %r entry of a training checkpoint%s" % (
                k, " (also present: %s)" % ", ".join(others) if others else "")
        if k in obj:
            raise ConvertError("%s: entry %r is not a dict of tensors" % (path, k))
    raise ConvertError("%s: not a state_dict and no %s entry; top-level keys: %s"
                       % (path, " / ".join(repr(k) for k in order),
                          ", ".join(repr(k) for k in keys[:20]) or "(none)"))


def strip_wrapper_prefix(sd):
    """DistributedDataParallel ("module.") and torch.compile ("_orig_mod.") prefixes."""
    for prefix in ("module.", "_orig_mod."):
        if sd and all(k.startswith(prefix) for k in sd):
            note("  stripping the %r prefix of every key" % prefix)
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def weights_in_dir(d):
    """diffusion_pytorch_model.safetensors (preferred) or .bin inside directory d."""
    for ext in (".safetensors", ".bin"):
        p = os.path.join(d, WEIGHTS + ext)
        if os.path.isfile(p):
            return p
    raise ConvertError("%s: neither %s.safetensors nor %s.bin" % (d, WEIGHTS, WEIGHTS))


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConvertError("%s: %s" % (path, e))


# ---------------------------------------------------------------------------------------------
# Shape checking

def check_tensors(sd, expected, what):
    """Every expected tensor present with its shape and a float dtype; returns the extra keys."""
    missing = [k for k in expected if k not in sd]
    if missing:
        raise ConvertError("%s: %d expected tensor(s) missing: %s%s" % (
            what, len(missing), ", ".join(missing[:8]), " ..." if len(missing) > 8 else ""))
    for k, shape in expected.items():
        got = tuple(sd[k].shape)
        if got != tuple(shape):
            raise ConvertError("%s: %s has shape %s, expected %s" % (what, k, list(got),
                                                                     list(shape)))
        if sd[k].dtype not in FLOAT_DTYPES:
            raise ConvertError("%s: %s has dtype %s, expected a float type" % (what, k,
                                                                           sd[k].dtype))
    return sorted(k for k in sd if k not in expected)


def shape_of(sd, key, ndim, what):
    if key not in sd:
        raise ConvertError("%s: %s is missing" % (what, key))
    s = tuple(sd[key].shape)
    if len(s) != ndim:
        raise ConvertError("%s: %s has shape %s, expected %d dims" % (what, key, list(s), ndim))
    return s


def block_count(sd, pattern, what):
    idx = sorted({int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m})
    if not idx:
        raise ConvertError("%s: no transformer blocks" % what)
    if idx != list(range(len(idx))):
        raise ConvertError("%s: block indices are not 0..%d: %s" % (what, len(idx) - 1, idx))
    return len(idx)


def pick_heads(hidden, cfg_heads, arg_heads):
    heads = arg_heads or cfg_heads or PAPER_HEADS.get(hidden)
    if not heads:
        raise ConvertError("hidden size %d is none of the paper's (384, 768, 1024, 1152): pass "
                           "--heads" % hidden)
    if hidden % heads:
        raise ConvertError("hidden size %d is not divisible by %d heads" % (hidden, heads))
    return heads


# ---------------------------------------------------------------------------------------------
# DiT

def dit_original(sd, args, what):
    """Infer the configuration of an original-layout (facebookresearch/DiT) state dict and check
    every tensor. Returns (config dict, facts dict, extra keys)."""
    D, C, p, p2 = shape_of(sd, "x_embedder.proj.weight", 4, what)
    if p != p2:
        raise ConvertError("%s: x_embedder.proj.weight kernel %dx%d is not square" % (what, p, p2))
    depth = block_count(sd, r"blocks\.(\d+)\.", what)
    rows = shape_of(sd, "y_embedder.embedding_table.weight", 2, what)[0]
    classes = rows - 1
    lin = shape_of(sd, "final_layer.linear.weight", 2, what)[0]
    if lin % (p * p):
        raise ConvertError("%s: final_layer.linear has %d outputs, not a multiple of p^2 = %d"
                           % (what, lin, p * p))
    out = lin // (p * p)
    if out not in (C, 2 * C):
        raise ConvertError("%s: %d output channels for %d latent channels (expected %d or %d)"
                           % (what, out, C, C, 2 * C))
    if "blocks.0.cross_attn.q.weight" in sd:
        block = "cross_attention"
    elif "blocks.0.adaLN_modulation.1.weight" in sd:
        r = sd["blocks.0.adaLN_modulation.1.weight"].shape[0]
        block = {6 * D: "adaln_zero", 4 * D: "adaln"}.get(r)
        if not block:
            raise ConvertError("%s: blocks.0.adaLN_modulation.1.weight has %d rows, expected "
                               "6D = %d (adaLN-Zero) or 4D = %d (adaLN)" % (what, r, 6 * D, 4 * D))
    elif "blocks.0.norm1.weight" in sd:
        block = "in_context"
    else:
        raise ConvertError("%s: cannot tell the block design (no adaLN_modulation, cross_attn "
                           "or norm1 tensors in blocks.0)" % what)

    grid = None
    if "pos_embed" in sd:
        pe = shape_of(sd, "pos_embed", 3, what)
        grid = int(round(pe[1] ** 0.5))
        if pe[0] != 1 or grid * grid != pe[1] or pe[2] != D:
            raise ConvertError("%s: pos_embed has shape %s, expected [1, G*G, %d]"
                               % (what, list(pe), D))
    heads = pick_heads(D, None, args.heads)

    e = {"x_embedder.proj.weight": (D, C, p, p), "x_embedder.proj.bias": (D,),
         "t_embedder.mlp.0.weight": (D, FREQ_DIM), "t_embedder.mlp.0.bias": (D,),
         "t_embedder.mlp.2.weight": (D, D), "t_embedder.mlp.2.bias": (D,),
         "y_embedder.embedding_table.weight": (classes + 1, D),
         "final_layer.linear.weight": (p * p * out, D), "final_layer.linear.bias": (p * p * out,),
         "final_layer.adaLN_modulation.1.weight": (2 * D, D),
         "final_layer.adaLN_modulation.1.bias": (2 * D,)}
    if grid is not None:
        e["pos_embed"] = (1, grid * grid, D)
    lin = {"attn.qkv": (3 * D, D), "attn.proj": (D, D), "mlp.fc1": (4 * D, D),
           "mlp.fc2": (D, 4 * D)}
    if block == "adaln_zero":
        lin["adaLN_modulation.1"] = (6 * D, D)
    elif block == "adaln":
        lin["adaLN_modulation.1"] = (4 * D, D)
    elif block == "cross_attention":
        lin.update({"cross_attn.q": (D, D), "cross_attn.kv": (2 * D, D),
                    "cross_attn.proj": (D, D), "norm1": None, "norm2": None, "norm3": None})
    else:
        lin.update({"norm1": None, "norm2": None})
    for i in range(depth):
        for name, shape in lin.items():
            pre = "blocks.%d.%s." % (i, name)
            if shape is None:                  # affine LayerNorm
                e[pre + "weight"] = (D,)
                e[pre + "bias"] = (D,)
            else:
                e[pre + "weight"] = shape
                e[pre + "bias"] = (shape[0],)
    extra = check_tensors(sd, e, what)

    cfg = {"_class_name": "DiTTransformer2DModel", "sample_size": None, "patch_size": p,
           "in_channels": C, "out_channels": out, "num_layers": depth,
           "num_attention_heads": heads, "attention_head_dim": D // heads,
           "num_embeds_ada_norm": classes, "attention_bias": True,
           "activation_fn": "gelu-approximate", "norm_type": "ada_norm_zero",
           "norm_elementwise_affine": False}
    if block != "adaln_zero":
        cfg["ditd_block"] = block
    facts = {"layout": "original", "block": block, "hidden": D, "patch": p, "channels": C,
             "grid": grid, "classes": classes, "keep": list(e)}
    return cfg, facts, extra


def dit_diffusers(sd, args, what, dir_cfg):
    """The same for a diffusers-layout (DiTTransformer2DModel) state dict."""
    D, C, p, p2 = shape_of(sd, "pos_embed.proj.weight", 4, what)
    if p != p2:
        raise ConvertError("%s: pos_embed.proj.weight kernel %dx%d is not square" % (what, p, p2))
    depth = block_count(sd, r"transformer_blocks\.(\d+)\.", what)
    emb = "transformer_blocks.%d.norm1.emb."
    rows = shape_of(sd, emb % 0 + "class_embedder.embedding_table.weight", 2, what)[0]
    classes = rows - 1
    lin = shape_of(sd, "proj_out_2.weight", 2, what)[0]
    if lin % (p * p) or lin // (p * p) not in (C, 2 * C):
        raise ConvertError("%s: proj_out_2 has %d outputs; expected p^2 * (%d or %d)"
                           % (what, lin, C, 2 * C))
    out = lin // (p * p)
    heads = pick_heads(D, dir_cfg.get("num_attention_heads"), args.heads)
    e = {"pos_embed.proj.weight": (D, C, p, p), "pos_embed.proj.bias": (D,),
         "proj_out_1.weight": (2 * D, D), "proj_out_1.bias": (2 * D,),
         "proj_out_2.weight": (lin, D), "proj_out_2.bias": (lin,)}
    per = {"norm1.emb.timestep_embedder.linear_1": (D, FREQ_DIM),
           "norm1.emb.timestep_embedder.linear_2": (D, D),
           "norm1.linear": (6 * D, D), "attn1.to_q": (D, D), "attn1.to_k": (D, D),
           "attn1.to_v": (D, D), "attn1.to_out.0": (D, D), "ff.net.0.proj": (4 * D, D),
           "ff.net.2": (D, 4 * D)}
    for i in range(depth):
        pre = "transformer_blocks.%d." % i
        for name, shape in per.items():
            e[pre + name + ".weight"] = shape
            e[pre + name + ".bias"] = (shape[0],)
        e[pre + "norm1.emb.class_embedder.embedding_table.weight"] = (rows, D)
    extra = check_tensors(sd, e, what)
    # ditd reads block 0's copy of the embedders; the others must be equal
    for i in range(1, depth):
        for k in [k for k in e if k.startswith(emb % 0)]:
            other = k.replace(emb % 0, emb % i, 1)
            if not np.array_equal(sd[k].numpy(), sd[other].numpy()):
                warn("%s differs from block 0's copy; ditd uses block 0's embedders" % other)
                break

    cfg = dict(dir_cfg)
    inferred = {"patch_size": p, "in_channels": C, "out_channels": out, "num_layers": depth,
                "num_attention_heads": heads, "attention_head_dim": D // heads,
                "num_embeds_ada_norm": classes}
    for k, v in inferred.items():
        if k in cfg and cfg[k] != v:
            raise ConvertError("%s: config.json says %s = %r but the tensors give %r"
                               % (what, k, cfg[k], v))
        cfg[k] = v
    cfg.setdefault("_class_name", "DiTTransformer2DModel")
    cfg.setdefault("sample_size", None)
    facts = {"layout": "diffusers", "block": "adaln_zero", "hidden": D, "patch": p,
             "channels": C, "grid": None, "classes": classes, "keep": list(e)}
    return cfg, facts, extra


def read_dit(args):
    path, dir_cfg = args.dit, {}
    if os.path.isdir(path):
        cfg_path = os.path.join(path, "config.json")
        if os.path.isfile(cfg_path):
            dir_cfg = read_json(cfg_path)
        path = weights_in_dir(path)
    obj = load_file(path)
    sd, source = select_state_dict(obj, path, args.weights)
    sd = strip_wrapper_prefix(sd)
    what = os.path.basename(path)
    if "x_embedder.proj.weight" in sd:
        cfg, facts, extra = dit_original(sd, args, what)
    elif "pos_embed.proj.weight" in sd:
        cfg, facts, extra = dit_diffusers(sd, args, what, dir_cfg)
    else:
        raise ConvertError("%s: neither x_embedder.proj.weight (facebookresearch/DiT) nor "
                           "pos_embed.proj.weight (diffusers) is present; not a DiT checkpoint"
                           % what)
    if args.num_classes is not None and args.num_classes != facts["classes"]:
        raise ConvertError("--num-classes %d, but the label table has %d rows (classes + the "
                           "null class) = %d classes" % (args.num_classes,
                                                         facts["classes"] + 1, facts["classes"]))
    if extra:
        warn("%d tensor(s) the model does not use are left out: %s%s" % (
            len(extra), ", ".join(extra[:6]), " ..." if len(extra) > 6 else ""))
    return {k: sd[k] for k in facts["keep"]}, cfg, facts, source, path


# ---------------------------------------------------------------------------------------------
# VAE

def vae_naming(sd):
    if any(k.startswith("decoder.up_blocks.") for k in sd):
        return "diffusers"
    if any(k.startswith("decoder.up.") for k in sd):
        return "ldm"
    raise ConvertError("VAE: no decoder up blocks (decoder.up_blocks.* or decoder.up.*)")


def vae_expected(naming, blocks, lpb, z, out_ch, attn, attn_names):
    """Decoder tensors (and shapes) of an AutoencoderKL in the given naming."""
    n = len(blocks)
    rev = list(reversed(blocks))
    e = {}

    def conv(name, o, i, k):
        e[name + ".weight"] = (o, i, k, k)
        e[name + ".bias"] = (o,)

    def norm(name, c):
        e[name + ".weight"] = (c,)
        e[name + ".bias"] = (c,)

    def resnet(pre, i, o, short):
        norm(pre + "norm1", i)
        conv(pre + "conv1", o, i, 3)
        norm(pre + "norm2", o)
        conv(pre + "conv2", o, o, 3)
        if i != o:
            conv(pre + short, o, i, 1)

    ldm = naming == "ldm"
    short = "nin_shortcut" if ldm else "conv_shortcut"
    conv("post_quant_conv", z, z, 1)
    conv("decoder.conv_in", rev[0], z, 3)
    mid = "decoder.mid." if ldm else "decoder.mid_block."
    for j in range(2):
        resnet(mid + ("block_%d." % (j + 1) if ldm else "resnets.%d." % j), rev[0], rev[0], short)
    if attn:
        c = rev[0]
        a = mid + ("attn_1." if ldm else "attentions.0.")
        norm(a + ("norm" if ldm else "group_norm"), c)
        for nm in attn_names:
            e[a + nm + ".weight"] = (c, c, 1, 1) if ldm else (c, c)
            e[a + nm + ".bias"] = (c,)
    prev = rev[0]
    for k in range(n):
        o = rev[k]
        pre = "decoder.up.%d." % (n - 1 - k) if ldm else "decoder.up_blocks.%d." % k
        for j in range(lpb + 1):
            resnet(pre + ("block.%d." if ldm else "resnets.%d.") % j, prev if j == 0 else o, o,
                   short)
        if k < n - 1:
            conv(pre + ("upsample.conv" if ldm else "upsamplers.0.conv"), o, o, 3)
        prev = o
    norm("decoder.norm_out" if ldm else "decoder.conv_norm_out", blocks[0])
    conv("decoder.conv_out", out_ch, blocks[0], 3)
    return e


def vae_config_from_shapes(sd, naming, what):
    """Architecture of the decoder from its tensor shapes; checks every decoder tensor."""
    z = shape_of(sd, "post_quant_conv.weight", 4, what)[0]
    out_ch = shape_of(sd, "decoder.conv_out.weight", 4, what)[0]
    if naming == "ldm":
        levels = block_count(sd, r"decoder\.up\.(\d+)\.", what)
        # ldm up.{i} is the level with block_out_channels[i] (up.0 = the last, full-size stage)
        blocks = [shape_of(sd, "decoder.up.%d.block.0.conv1.weight" % i, 4, what)[0]
                  for i in range(levels)]
        lpb = block_count(sd, r"decoder\.up\.0\.block\.(\d+)\.", what) - 1
        attn = "decoder.mid.attn_1.q.weight" in sd
        attn_names = ("q", "k", "v", "proj_out")
    else:
        levels = block_count(sd, r"decoder\.up_blocks\.(\d+)\.", what)
        blocks = [shape_of(sd, "decoder.up_blocks.%d.resnets.0.conv1.weight" % (levels - 1 - i),
                           4, what)[0] for i in range(levels)]
        lpb = block_count(sd, r"decoder\.up_blocks\.0\.resnets\.(\d+)\.", what) - 1
        a = "decoder.mid_block.attentions.0."
        attn = any(k.startswith(a) for k in sd)
        attn_names = (("to_q", "to_k", "to_v", "to_out.0") if a + "to_q.weight" in sd
                      else ("query", "key", "value", "proj_attn"))
    if lpb < 1:
        raise ConvertError("%s: fewer than 2 ResNets in the last up block" % what)
    e = vae_expected(naming, blocks, lpb, z, out_ch, attn, attn_names)
    check_tensors(sd, e, what + " (decoder)")
    in_ch = sd["encoder.conv_in.weight"].shape[1] if "encoder.conv_in.weight" in sd else out_ch
    return {"in_channels": in_ch, "out_channels": out_ch, "latent_channels": z,
            "block_out_channels": blocks, "layers_per_block": lpb,
            "mid_block_add_attention": attn}


def vae_from_state(sd, what):
    """VAE tensors of a state dict: first_stage_model.* of a full Stable Diffusion checkpoint,
    or the bare encoder/decoder/quant_conv/post_quant_conv keys; names are kept."""
    if any(k.startswith(LDM_PREFIX) for k in sd):
        vsd = {k[len(LDM_PREFIX):]: v for k, v in sd.items() if k.startswith(LDM_PREFIX)}
        note("  taking the %d first_stage_model.* tensors" % len(vsd))
    else:
        vsd = {k: v for k, v in sd.items() if k.startswith(VAE_ROOTS)}
    dropped = len(sd) - len(vsd)
    if not vsd:
        raise ConvertError("%s: no VAE tensors (decoder.*, post_quant_conv.*, or "
                           "first_stage_model.*); keys look like %s" % (what, ", ".join(
                               sorted(sd)[:5])))
    if dropped:
        note("  leaving out %d tensor(s) that are not part of the VAE" % dropped)
    return vsd


def read_vae(args):
    """Returns (state dict, config, source file, whether the file can be copied as is)."""
    if args.vae_dir:
        d = args.vae_dir
        cfg_path = os.path.join(d, "config.json")
        if not os.path.isfile(cfg_path):
            raise ConvertError("%s: no config.json (a diffusers AutoencoderKL directory is "
                               "expected)" % d)
        cfg = read_json(cfg_path)
        path = weights_in_dir(d)
        obj = load_file(path)
        sd0, _ = select_state_dict(obj, path)
        sd = strip_wrapper_prefix(sd0)
        what = os.path.join(os.path.basename(os.path.normpath(d)), os.path.basename(path))
        shapes = vae_config_from_shapes(sd, vae_naming(sd), what)
        for k, v in shapes.items():
            have = cfg.get(k)
            if k == "mid_block_add_attention" and have is None:
                have = True
            if k in ("in_channels",) or have is None:
                continue
            if (list(have) if isinstance(have, (list, tuple)) else have) != v:
                raise ConvertError("%s: config.json says %s = %r but the tensors give %r"
                                   % (d, k, have, v))
        _check_groups(cfg.get("block_out_channels", []), cfg.get("norm_num_groups", 32), d)
        return sd, cfg, path, path.endswith(".safetensors") and list(sd) == list(sd0)
    path = args.vae_ckpt
    obj = load_file(path)
    if is_state_dict(obj):
        sd = dict(obj)
    elif isinstance(obj, dict) and is_state_dict(obj.get("state_dict")):
        sd = dict(obj["state_dict"])
        note("  using the 'state_dict' entry of %s" % os.path.basename(path))
    else:
        sd, _ = select_state_dict(obj, path)
    sd = strip_wrapper_prefix(sd)
    vsd = vae_from_state(sd, os.path.basename(path))
    naming = vae_naming(vsd)
    shapes = vae_config_from_shapes(vsd, naming, os.path.basename(path))
    n = len(shapes["block_out_channels"])
    cfg = {"_class_name": "AutoencoderKL", "in_channels": shapes["in_channels"],
           "out_channels": shapes["out_channels"], "latent_channels": shapes["latent_channels"],
           "block_out_channels": shapes["block_out_channels"],
           "layers_per_block": shapes["layers_per_block"],
           "norm_num_groups": args.vae_norm_groups, "act_fn": "silu",
           "down_block_types": ["DownEncoderBlock2D"] * n,
           "up_block_types": ["UpDecoderBlock2D"] * n,
           "mid_block_add_attention": shapes["mid_block_add_attention"],
           "scaling_factor": args.vae_scaling_factor}
    _check_groups(cfg["block_out_channels"], cfg["norm_num_groups"], path)
    note("  VAE (%s names): block_out_channels %s, layers_per_block %d, latent channels %d, "
         "norm groups %d, scaling factor %g" % (naming, cfg["block_out_channels"],
                                                cfg["layers_per_block"], cfg["latent_channels"],
                                                cfg["norm_num_groups"], cfg["scaling_factor"]))
    return vsd, cfg, path, False


def _check_groups(blocks, groups, what):
    bad = [c for c in blocks if not isinstance(c, int) or c % groups]
    if bad:
        raise ConvertError("%s: block_out_channels %s are not all multiples of norm_num_groups "
                           "%d (set --vae-norm-groups)" % (what, blocks, groups))


# ---------------------------------------------------------------------------------------------
# dtype conversion and writing

def to_f32(t):
    a = t.numpy()
    if t.dtype == "F32":
        return a
    if t.dtype == "BF16":
        return (a.astype("<u4") << 16).view("<f4")
    return a.astype("<f4")


def f32_to_bf16_bits(a):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (NaN stays NaN)."""
    u = a.view("<u4").astype("<u8")
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    nan = np.isnan(a)
    if nan.any():
        r[nan] = ((u[nan] >> 16) | 0x40).astype("<u2")
    return r


def out_dtype(t, policy):
    if policy == "keep":
        return "F32" if t.dtype == "F64" else t.dtype
    return {"f32": "F32", "f16": "F16", "bf16": "BF16"}[policy]


def producer(name, t, dtype):
    """A function returning the bytes of tensor t in dtype; refuses non-finite values."""
    def make():
        if dtype == t.dtype:
            a = t.numpy()
        elif dtype == "F32":
            a = to_f32(t)
        elif dtype == "F16":
            a = to_f32(t).astype("<f2")
        else:
            a = f32_to_bf16_bits(to_f32(t))
        bad = (a & 0x7F80) == 0x7F80 if dtype == "BF16" else ~np.isfinite(a)
        nbad = int(np.count_nonzero(bad))
        if nbad:
            raise ConvertError("%s: %d non-finite value(s)%s" % (
                name, nbad, "" if dtype == t.dtype else " after conversion to " + dtype))
        return a
    return make


def write_weights(path, sd, policy, source):
    entries = [(k, out_dtype(t, policy), t.shape, producer(k, t, out_dtype(t, policy)))
               for k, t in sd.items()]
    nbytes = st_write.write(path, entries, metadata={"format": "pt",
                                                     "converted_from": os.path.basename(source)})
    dtypes = sorted({e[1] for e in entries})
    params = sum(t.numel for t in sd.values())
    return len(entries), params, nbytes, dtypes


def copy_safetensors(src, dst, sd):
    """Copy a checked safetensors file byte for byte (its values checked for finiteness)."""
    for k, t in sd.items():
        if t.dtype in FLOAT_DTYPES:
            producer(k, t, t.dtype)()
    shutil.copyfile(src, dst + ".part")
    os.replace(dst + ".part", dst)
    return (len(sd), sum(t.numel for t in sd.values()), os.path.getsize(dst),
            sorted({t.dtype for t in sd.values()}))


def write_json(path, obj):
    with open(path + ".part", "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(path + ".part", path)


def read_class_names(path, classes):
    """id2label from a JSON list of names, a map id -> name, or a file with an id2label map
    (such as a hub model_index.json)."""
    obj = read_json(path)
    if isinstance(obj, dict) and isinstance(obj.get("id2label"), dict):
        obj = obj["id2label"]
    if isinstance(obj, list):
        obj = {str(i): v for i, v in enumerate(obj)}
    if not isinstance(obj, dict):
        raise ConvertError("%s: expected a list of names or an object id -> name" % path)
    out = {}
    for k, v in obj.items():
        if not re.fullmatch(r"\d+", str(k)) or int(k) >= classes or not isinstance(v, str):
            raise ConvertError("%s: entry %r: %r must map a class id in [0, %d) to a string"
                               % (path, k, v, classes))
        out[str(int(k))] = v
    if len(out) != classes:
        warn("%s names %d of the %d classes" % (path, len(out), classes))
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


# ---------------------------------------------------------------------------------------------

def human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1000.0


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Convert a DiT checkpoint (+ a VAE) into a ditd model directory "
                    "(docs/models.md). Never imports torch; refuses pickles that name anything "
                    "but tensors and dicts.")
    p.add_argument("--dit", required=True,
                   help="DiT weights: facebookresearch/DiT .pt (raw state_dict or a train.py "
                        "checkpoint), a diffusers transformer .bin/.safetensors, or a diffusers "
                        "transformer directory")
    v = p.add_mutually_exclusive_group(required=True)
    v.add_argument("--vae-dir", help="diffusers AutoencoderKL directory (config.json + "
                                     "diffusion_pytorch_model.safetensors or .bin)")
    v.add_argument("--vae-ckpt", help="CompVis/ldm VAE or Stable Diffusion .ckpt, or a VAE "
                                      ".safetensors")
    v.add_argument("--no-vae", action="store_true",
                   help="write the transformer only (ditd needs a vae/ directory to load it)")
    p.add_argument("-o", "--out", required=True, help="output model directory")
    p.add_argument("--image-size", type=int, help="image size in pixels (checked against the "
                   "position table; required when the checkpoint has none)")
    p.add_argument("--num-classes", type=int, help="expected number of classes (checked)")
    p.add_argument("--heads", type=int, help="attention heads (default: from the hidden size, "
                   "as in the paper: 384->6, 768->12, 1024->16, 1152->16)")
    p.add_argument("--class-names", help="JSON: a list of names, a map id -> name, or a file "
                   "with an id2label map; written to model_index.json")
    p.add_argument("--weights", default="auto", choices=("auto", "ema", "model"),
                   help="which weights of a train.py checkpoint (auto: ema, else model)")
    p.add_argument("--dtype", default="f32", choices=("f32", "f16", "bf16", "keep"),
                   help="dtype of the written tensors (keep: as stored; default f32)")
    p.add_argument("--vae-norm-groups", type=int, default=32,
                   help="GroupNorm groups of a VAE read from a .ckpt (default 32)")
    p.add_argument("--vae-scaling-factor", type=float, default=0.18215,
                   help="latent scaling factor of a VAE read from a .ckpt (default 0.18215)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    return p.parse_args(argv)


def convert(args):
    out = args.out
    if os.path.exists(out) and not args.force and any(
            os.path.exists(os.path.join(out, n))
            for n in ("transformer", "vae", "model_index.json")):
        raise ConvertError("%s already holds a model; pass --force to overwrite" % out)

    note("reading %s" % args.dit)
    dsd, dcfg, facts, source, dpath = read_dit(args)
    note("  DiT weights: %s" % source)

    vsd = vcfg = vpath = None
    copy_vae = False
    if not args.no_vae:
        note("reading %s" % (args.vae_dir or args.vae_ckpt))
        vsd, vcfg, vpath, copy_vae = read_vae(args)
        if vcfg.get("latent_channels", 4) != facts["channels"]:
            raise ConvertError("the VAE has %d latent channels, the DiT %d"
                               % (vcfg.get("latent_channels", 4), facts["channels"]))
    factor = 2 ** (len(vcfg["block_out_channels"]) - 1) if vcfg else 8

    sample = None
    if facts["grid"] is not None:
        sample = facts["grid"] * facts["patch"]
    elif dcfg.get("sample_size"):
        sample = dcfg["sample_size"]
    if args.image_size is not None:
        if args.image_size % factor:
            raise ConvertError("--image-size %d is not a multiple of the VAE factor %d"
                               % (args.image_size, factor))
        if sample is not None and sample != args.image_size // factor:
            raise ConvertError("--image-size %d means %d latent cells per side, but the "
                               "checkpoint's position table is for %d (image %d)"
                               % (args.image_size, args.image_size // factor, sample,
                                  sample * factor))
        sample = args.image_size // factor
    if sample is None:
        raise ConvertError("the checkpoint has no position table: pass --image-size")
    if sample % facts["patch"]:
        raise ConvertError("latent size %d is not a multiple of the patch %d"
                           % (sample, facts["patch"]))
    dcfg["sample_size"] = sample
    if vcfg is not None and "sample_size" not in vcfg:
        vcfg["sample_size"] = sample * factor

    id2label = None
    if args.class_names:
        id2label = read_class_names(args.class_names, facts["classes"])

    # everything is written to a staging directory next to the output and moved into place
    # only when complete, so a refused tensor (say a NaN) leaves no half-written model
    note("writing %s" % out)
    stage = "%s.converting-%d" % (os.path.normpath(out), os.getpid())
    try:
        os.makedirs(os.path.join(stage, "transformer"))
        dsum = write_weights(os.path.join(stage, "transformer", WEIGHTS + ".safetensors"), dsd,
                             args.dtype, dpath)
        write_json(os.path.join(stage, "transformer", "config.json"), dcfg)
        vsum = None
        if vsd is not None:
            os.makedirs(os.path.join(stage, "vae"))
            dst = os.path.join(stage, "vae", WEIGHTS + ".safetensors")
            if copy_vae and args.dtype in ("keep", "f32") and all(
                    t.dtype == "F32" or args.dtype == "keep" for t in vsd.values()):
                vsum = copy_safetensors(vpath, dst, vsd)
            else:
                vsum = write_weights(dst, vsd, args.dtype, vpath)
            write_json(os.path.join(stage, "vae", "config.json"), vcfg)
        if id2label is not None:
            write_json(os.path.join(stage, "model_index.json"),
                       {"_class_name": "DiTPipeline",
                        "transformer": ["diffusers", "DiTTransformer2DModel"],
                        "vae": ["diffusers", "AutoencoderKL"], "id2label": id2label})
        os.makedirs(out, exist_ok=True)
        for name in sorted(os.listdir(stage)):
            dst = os.path.join(out, name)
            if os.path.isdir(dst) and not os.path.islink(dst):
                shutil.rmtree(dst)
            elif os.path.lexists(dst):
                os.unlink(dst)
            os.rename(os.path.join(stage, name), dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

    D = facts["hidden"]
    note("DiT: %s layout, %s blocks, depth %d, hidden %d, heads %d, patch %d, latent %dx%dx%d, "
         "%s sigma, %d classes; image %dx%d" % (
             facts["layout"], facts["block"], dcfg["num_layers"], D,
             dcfg["num_attention_heads"], facts["patch"], facts["channels"], sample, sample,
             "learned" if dcfg["out_channels"] == 2 * facts["channels"] else "fixed",
             facts["classes"], sample * factor, sample * factor))
    for label, s in (("transformer", dsum), ("vae", vsum)):
        if s:
            note("%-12s %5d tensors  %13s parameters  %10s  (%s)" % (
                label + ":", s[0], "{:,}".format(s[1]), human(s[2]), "/".join(s[3])))
    if id2label is not None:
        note("model_index.json: %d class names" % len(id2label))
    if args.no_vae:
        warn("no VAE written: add %s/vae/ before loading the model" % out)
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return convert(args)
    except ConvertError as e:
        print("dit_convert: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
