"""Write ditd model directories (docs/models.md) from the reference modules.

    write_model(dir, dit, vae, layout="original"|"diffusers",
                vae_naming="diffusers"|"legacy"|"ldm"|"ldm_prefixed", dtype="F32"|"F16"|"BF16")

`dit` is a pyref.dit.DiT (original parameter names), `vae` a pyref.vae.AutoencoderKL (diffusers
names). The DiT goes out in the original facebookresearch/DiT key layout or in the diffusers
DiTTransformer2DModel layout (qkv split into to_q/to_k/to_v, the embedders copied into every
block, proj_out_1/2, no pos_embed); the VAE in diffusers names, with the legacy attention names
(query/key/value/proj_attn), or in CompVis/ldm names (1x1 conv attention weights, reversed up
index), optionally under the `first_stage_model.` prefix of full Stable Diffusion checkpoints.

Also: random re-initialisation with non-trivial scale (the paper's initialisation zeroes gates and
the output layer, which would make a parity test prove nothing), and rounding of the weights to
F16/BF16 so a reference can be computed from exactly the values a half-precision file holds.
"""
import json
import os
import re

import torch

from . import st

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
VAE_NAMINGS = ("diffusers", "legacy", "ldm", "ldm_prefixed")
LDM_PREFIX = "first_stage_model."


# ---------------------------------------------------------------------------------------------
# Weights

@torch.no_grad()
def reinit_(module, seed, emb_std=0.5):
    """Re-initialise every parameter of `module` in place with seeded random values.

    Weights with a fan-in (Linear, Conv) get N(0, 1/fan_in); norm weights 1 + N(0, 0.2^2);
    biases N(0, 0.05^2); embedding tables N(0, emb_std^2). The DiT `pos_embed` (the fixed
    sin-cos table) is left alone. Returns the module.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if name == "pos_embed":
            continue
        leaf = name.rsplit(".", 1)[-1]
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        is_norm = re.search(r"(^|\.)(norm\d*|group_norm|conv_norm_out|norm_out|norm_final)$", owner)
        if "embedding_table" in name:
            v = torch.randn(p.shape, generator=g) * emb_std
        elif is_norm and leaf == "weight":
            v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
        elif leaf == "bias" or p.dim() == 1:
            v = 0.05 * torch.randn(p.shape, generator=g)
        else:
            fan_in = 1
            for s in p.shape[1:]:
                fan_in *= s
            v = torch.randn(p.shape, generator=g) / fan_in ** 0.5
        p.copy_(v)
    return module


@torch.no_grad()
def round_weights_(module, dtype):
    """Round every parameter and buffer to `dtype` ("F16", "BF16", "F32") and back to float32."""
    tdt = DTYPES[dtype]
    for t in list(module.parameters()) + list(module.buffers()):
        if t.dtype == torch.float32:
            t.copy_(t.to(tdt).to(torch.float32))
    return module


# ---------------------------------------------------------------------------------------------
# DiT

def dit_state(dit, layout="original", pos_embed=True):
    """State dict of a pyref DiT in the given key layout (float32 tensors)."""
    sd = {k: v.detach().clone() for k, v in dit.state_dict().items()}
    if layout == "original":
        if not pos_embed:
            sd.pop("pos_embed")
        return sd
    if layout != "diffusers":
        raise ValueError("layout " + layout)
    if dit.block != "adaln_zero":
        raise ValueError("the diffusers layout has adaLN-Zero blocks only")
    d = dit.hidden_size
    out = {
        "pos_embed.proj.weight": sd["x_embedder.proj.weight"],
        "pos_embed.proj.bias": sd["x_embedder.proj.bias"],
        "proj_out_1.weight": sd["final_layer.adaLN_modulation.1.weight"],
        "proj_out_1.bias": sd["final_layer.adaLN_modulation.1.bias"],
        "proj_out_2.weight": sd["final_layer.linear.weight"],
        "proj_out_2.bias": sd["final_layer.linear.bias"],
    }
    emb = {
        "norm1.emb.timestep_embedder.linear_1.weight": sd["t_embedder.mlp.0.weight"],
        "norm1.emb.timestep_embedder.linear_1.bias": sd["t_embedder.mlp.0.bias"],
        "norm1.emb.timestep_embedder.linear_2.weight": sd["t_embedder.mlp.2.weight"],
        "norm1.emb.timestep_embedder.linear_2.bias": sd["t_embedder.mlp.2.bias"],
        "norm1.emb.class_embedder.embedding_table.weight":
            sd["y_embedder.embedding_table.weight"],
    }
    for i in range(dit.depth):
        src = "blocks.%d." % i
        dst = "transformer_blocks.%d." % i
        for k, v in emb.items():          # diffusers stores the embedders in every block
            out[dst + k] = v.clone()
        out[dst + "norm1.linear.weight"] = sd[src + "adaLN_modulation.1.weight"]
        out[dst + "norm1.linear.bias"] = sd[src + "adaLN_modulation.1.bias"]
        qw, kw, vw = sd[src + "attn.qkv.weight"].split(d, dim=0)
        qb, kb, vb = sd[src + "attn.qkv.bias"].split(d, dim=0)
        for nm, w, b in (("to_q", qw, qb), ("to_k", kw, kb), ("to_v", vw, vb)):
            out[dst + "attn1.%s.weight" % nm] = w.clone()
            out[dst + "attn1.%s.bias" % nm] = b.clone()
        out[dst + "attn1.to_out.0.weight"] = sd[src + "attn.proj.weight"]
        out[dst + "attn1.to_out.0.bias"] = sd[src + "attn.proj.bias"]
        out[dst + "ff.net.0.proj.weight"] = sd[src + "mlp.fc1.weight"]
        out[dst + "ff.net.0.proj.bias"] = sd[src + "mlp.fc1.bias"]
        out[dst + "ff.net.2.weight"] = sd[src + "mlp.fc2.weight"]
        out[dst + "ff.net.2.bias"] = sd[src + "mlp.fc2.bias"]
    return out


def dit_config(dit, extra=None):
    """transformer/config.json for `dit` with only the diffusers fields, plus `extra` (e.g.
    ditd_numerics, norm_eps, ditd_guidance_channels); None values in `extra` remove a key."""
    cfg = dit.config_json()
    for k in ("ditd_numerics", "norm_eps"):
        cfg.pop(k, None)
    if dit.block != "adaln_zero":
        cfg["ditd_block"] = dit.block
    for k, v in (extra or {}).items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


# ---------------------------------------------------------------------------------------------
# VAE

_LEGACY_ATTN = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
_LDM_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _ldm_name(name, nblocks):
    """diffusers AutoencoderKL key -> CompVis/ldm key (None when unchanged)."""
    n = name
    m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$", n)
    if m:
        return "%s.mid.attn_1.%s.%s" % (m.group(1), _LDM_ATTN[m.group(2)], m.group(3))
    n = re.sub(r"^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.",
               lambda m: "%s.mid.block_%d." % (m.group(1), int(m.group(2)) + 1), n)
    n = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
               lambda m: "decoder.up.%d.block.%s." % (nblocks - 1 - int(m.group(1)), m.group(2)), n)
    n = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
               lambda m: "decoder.up.%d.upsample." % (nblocks - 1 - int(m.group(1))), n)
    n = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2.", n)
    n = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", n)
    n = n.replace(".conv_shortcut.", ".nin_shortcut.")
    n = re.sub(r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out.", n)
    return n


def vae_state(vae, naming="diffusers"):
    """State dict of a pyref AutoencoderKL in the given naming (float32 tensors)."""
    sd = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    if naming == "diffusers":
        return sd
    out = {}
    if naming == "legacy":
        for k, v in sd.items():
            m = re.match(r"(.*\.attentions\.0\.)(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$", k)
            out[m.group(1) + _LEGACY_ATTN[m.group(2)] + "." + m.group(3) if m else k] = v
        return out
    if naming not in ("ldm", "ldm_prefixed"):
        raise ValueError("naming " + naming)
    nb = len(vae.block_out_channels)
    prefix = LDM_PREFIX if naming == "ldm_prefixed" else ""
    for k, v in sd.items():
        n = _ldm_name(k, nb)
        if ".attn_1." in n and n.endswith(".weight") and v.dim() == 2:
            v = v.reshape(v.shape[0], v.shape[1], 1, 1)   # ldm attention uses 1x1 convs
        out[prefix + n] = v
    return out


# ---------------------------------------------------------------------------------------------
# Directories

def _save(sd, path, dtype):
    tdt = DTYPES[dtype]
    st.save({k: v.to(tdt).contiguous() for k, v in sd.items()}, path, metadata={"format": "pt"})


def _json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_model(path, dit, vae, layout="original", vae_naming="diffusers", dtype="F32",
                config_extra=None, pos_embed=True, vae_dtype=None, dit_edit=None, vae_edit=None,
                id2label=None):
    """Write a complete model directory.

    config_extra: keys merged into transformer/config.json (None removes a key).
    dit_edit / vae_edit: optional callables applied to the state dict before saving (e.g. to drop
    or reshape a tensor for the error tests).
    """
    os.makedirs(os.path.join(path, "transformer"), exist_ok=True)
    os.makedirs(os.path.join(path, "vae"), exist_ok=True)
    sd = dit_state(dit, layout, pos_embed)
    if dit_edit:
        sd = dit_edit(sd)
    _save(sd, os.path.join(path, "transformer", "diffusion_pytorch_model.safetensors"), dtype)
    _json(os.path.join(path, "transformer", "config.json"), dit_config(dit, config_extra))
    vsd = vae_state(vae, vae_naming)
    if vae_edit:
        vsd = vae_edit(vsd)
    _save(vsd, os.path.join(path, "vae", "diffusion_pytorch_model.safetensors"),
          vae_dtype or dtype)
    _json(os.path.join(path, "vae", "config.json"), vae.config_json())
    index = {"_class_name": "DiTPipeline", "transformer": ["diffusers", "DiTTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    if id2label is None:
        id2label = {str(i): "class%d" % i for i in range(dit.num_classes)}
    index["id2label"] = id2label
    _json(os.path.join(path, "model_index.json"), index)
    return path
